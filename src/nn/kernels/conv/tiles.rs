//! The direct convolution's kernels, written once over [`Simd`] and compiled per instruction
//! set (the modules at the end). They read a zero-padded input, so no tap needs a bounds check,
//! and keep a tile of outputs in vector registers for the whole reduction: the convolution runs
//! at GEMM speed without writing an im2col matrix.
//!
//! Every function here is `unsafe`: the callers in `direct.rs` and `pool.rs` check the
//! processor's features and that every address the geometry implies lies inside the slices.

use super::direct::Geometry;
use crate::nn::simd::Simd;

/// One output row, filters `f0 .. f0 + LANES·V`: `out` points at the row's first pixel. Tiles of
/// `P` pixels; the last tile is moved left to end at the row's end (recomputing a few pixels)
/// rather than run a narrower, slower tile. `C` is 0, or the input channels when the column
/// stride is `SX`: then every tap's offset is a constant and no pointer has to leave a register.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_row<S: Simd, const V: usize, const P: usize, const C: usize, const SX: usize>(
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
            forward_tile::<S, V, 1, 0, 1>(g, x, w, bias, relu, oy, ox, f0, out);
        }
        return;
    }
    let mut ox = 0;
    while ox + P <= g.out_w {
        forward_tile::<S, V, P, C, SX>(g, x, w, bias, relu, oy, ox, f0, out);
        ox += P;
    }
    if ox < g.out_w {
        forward_tile::<S, V, P, C, SX>(g, x, w, bias, relu, oy, g.out_w - P, f0, out);
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn forward_tile<S: Simd, const V: usize, const P: usize, const C: usize, const SX: usize>(
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
    let pixel_step = if C > 0 { SX * C } else { g.sx * c_in };
    let mut acc = [[S::zero(); V]; P];
    for v in 0..V {
        let b = S::load(bias.add(f0 + S::LANES * v));
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
                let mut wv = [S::zero(); V];
                for v in 0..V {
                    wv[v] = S::load(weights.add(c * g.filters + S::LANES * v));
                }
                for p in 0..P {
                    let xv = S::splat(*taps.add(p * pixel_step + c));
                    for v in 0..V {
                        acc[p][v] = S::mul_add(xv, wv[v], acc[p][v]);
                    }
                }
            }
        }
    }
    for p in 0..P {
        for v in 0..V {
            let value = if relu { S::relu(acc[p][v]) } else { acc[p][v] };
            S::store(out.add((ox + p) * g.filters + f0 + S::LANES * v), value);
        }
    }
}

/// Adds to kernel rows `r0 .. r0 + R` (flattened (kx, c) of kernel row `ky`; they are
/// contiguous in the padded input) and filters `f0 .. f0 + LANES·V` their gradient over output
/// rows `oys`: Σ over pixels of input tap × output gradient. `dy` points at the gradient's
/// first output row, `dy_row` floats apart; rows below `keep_from` of the block are already
/// counted by a previous block and are not added again.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn weight_grad_block<S: Simd, const V: usize, const R: usize>(
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
    let mut acc = [[S::zero(); V]; R];
    for oy in oys {
        let taps_row = x.add(((oy * g.sy + ky) * g.in_w) * c_in + r0);
        let grads = dy.add(oy * dy_row + f0);
        for ox in 0..g.out_w {
            let taps = taps_row.add(ox * g.sx * c_in);
            let grad = grads.add(ox * g.filters);
            let mut d = [S::zero(); V];
            for v in 0..V {
                d[v] = S::load(grad.add(S::LANES * v));
            }
            for r in 0..R {
                let xv = S::splat(*taps.add(r));
                for v in 0..V {
                    acc[r][v] = S::mul_add(xv, d[v], acc[r][v]);
                }
            }
        }
    }
    let rows = dw.add((ky * g.kw * c_in + r0) * g.filters + f0);
    for r in keep_from..R {
        for v in 0..V {
            let at = rows.add(r * g.filters + S::LANES * v);
            S::store(at, S::add(S::load(at), acc[r][v]));
        }
    }
}

/// Pools two output rows (`top`, `bottom`) into `pixels` pooled pixels of `c` channels (a multiple
/// of `LANES`), writing each winner's corner (0‥3: top-left, top-right, bottom-left,
/// bottom-right; a later corner wins only when strictly greater).
#[inline(always)]
unsafe fn pool_pair<S: Simd>(
    top: *const f32,
    bottom: *const f32,
    pixels: usize,
    c: usize,
    pooled: *mut f32,
    corner: *mut u8,
) {
    for px in 0..pixels {
        for v in (0..c).step_by(S::LANES) {
            let at = 2 * px * c + v;
            let candidates = [
                S::load(top.add(at + c)),
                S::load(bottom.add(at)),
                S::load(bottom.add(at + c)),
            ];
            let mut best = S::load(top.add(at));
            let mut won = S::zero();
            for (k, candidate) in candidates.into_iter().enumerate() {
                won = S::select_gt(candidate, best, S::splat(k as f32 + 1.0), won);
                best = S::select_gt(candidate, best, candidate, best);
            }
            S::store(pooled.add(px * c + v), best);
            S::store_bytes(corner.add(px * c + v), won);
        }
    }
}

/// The output gradient of two convolution rows from one pooled row: each window's winner gets
/// the pooled gradient (zero when `relu` and the pooled value is not positive), the others zero.
/// Adds what each channel received to `sums` when it is not null.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn unpool_pair<S: Simd>(
    grad: *const f32,
    pooled: *const f32,
    corner: *const u8,
    relu: bool,
    pixels: usize,
    c: usize,
    (top, bottom): (*mut f32, *mut f32),
    sums: *mut f32,
) {
    let zero = S::zero();
    for px in 0..pixels {
        for v in (0..c).step_by(S::LANES) {
            let i = px * c + v;
            let mut g = S::load(grad.add(i));
            if relu {
                g = S::select_gt(S::load(pooled.add(i)), zero, g, zero);
            }
            if !sums.is_null() {
                S::store(sums.add(v), S::add(S::load(sums.add(v)), g));
            }
            let won = S::load_bytes(corner.add(i));
            let o = 2 * px * c + v;
            let targets = [top.add(o), top.add(o + c), bottom.add(o), bottom.add(o + c)];
            for (k, target) in targets.into_iter().enumerate() {
                S::store(target, S::select_eq(won, S::splat(k as f32), g, zero));
            }
        }
    }
}

/// The kernels compiled for one instruction set: the generic ones inline into these, so every
/// [`Simd`] operation becomes that set's instruction.
macro_rules! instruction_set {
    ($module:ident, $simd:ty $(, $features:literal)?) => {
        pub(super) mod $module {
            use super::Geometry;

            $(#[target_feature(enable = $features)])?
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn forward_row<const V: usize, const P: usize, const C: usize, const SX: usize>(
                g: &Geometry,
                x: *const f32,
                w: *const f32,
                bias: *const f32,
                relu: bool,
                oy: usize,
                f0: usize,
                out: *mut f32,
            ) {
                super::forward_row::<$simd, V, P, C, SX>(g, x, w, bias, relu, oy, f0, out)
            }

            $(#[target_feature(enable = $features)])?
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn weight_grad_block<const V: usize, const R: usize>(
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
                super::weight_grad_block::<$simd, V, R>(g, x, dy, dy_row, oys, ky, r0, keep_from, f0, dw)
            }

            $(#[target_feature(enable = $features)])?
            pub unsafe fn pool_pair(
                top: *const f32,
                bottom: *const f32,
                pixels: usize,
                c: usize,
                pooled: *mut f32,
                corner: *mut u8,
            ) {
                super::pool_pair::<$simd>(top, bottom, pixels, c, pooled, corner)
            }

            $(#[target_feature(enable = $features)])?
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn unpool_pair(
                grad: *const f32,
                pooled: *const f32,
                corner: *const u8,
                relu: bool,
                pixels: usize,
                c: usize,
                rows: (*mut f32, *mut f32),
                sums: *mut f32,
            ) {
                super::unpool_pair::<$simd>(grad, pooled, corner, relu, pixels, c, rows, sums)
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
instruction_set!(avx512, crate::nn::simd::Avx512, "avx512f,avx2,fma");
#[cfg(target_arch = "x86_64")]
instruction_set!(avx2, crate::nn::simd::Avx2, "avx2,fma");
#[cfg(target_arch = "aarch64")]
instruction_set!(neon, crate::nn::simd::Neon);
instruction_set!(scalar, crate::nn::simd::Portable);
