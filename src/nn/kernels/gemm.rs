//! A checked front to the `gemm` crate: matrices as slices with strides, so transposes are free
//! and every access is proven in bounds before the unchecked kernel runs.

use crate::nn::simd::Level;
use crate::nn::thread_pool::SharedMut;
use rayon::prelude::*;

/// A read-only matrix view: element (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix at the start of `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether the last element lies in `data`, computed without overflow: a wrapped product
    /// would pass the check and let the kernel read anywhere.
    fn fits(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .zip((self.cols - 1).checked_mul(self.col_stride))
            .and_then(|(r, c)| r.checked_add(c));
        last.is_some_and(|last| last < self.data.len())
    }
}

/// The instruction set the `gemm` crate runs here: it chooses by itself, the best the processor
/// has among those it was built with.
pub fn instruction_set() -> Level {
    if cfg!(feature = "gemm-avx512") && Level::Avx512.is_available() {
        Level::Avx512
    } else if Level::Avx2.is_available() {
        Level::Avx2
    } else {
        Level::Scalar
    }
}

/// Multiply-adds below which a product stays on one thread: handing out bands costs more.
const PARALLEL_WORK: usize = 1 << 18;

/// Whether one product may use rayon's threads (for a single large product) or must stay on
/// the calling thread (when the caller already runs one product per thread).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    One,
    All,
}

/// `c = a · b` (or `c += a · b` with `accumulate`), `c` row-major `a.rows × b.cols`.
pub fn matmul(c: &mut [f32], a: Mat, b: Mat, accumulate: bool, threads: Threads) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert!(
        m.checked_mul(n).is_some_and(|mn| c.len() >= mn) && a.fits() && b.fits(),
        "matrix out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let parts = match threads {
        Threads::All if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_WORK => {
            rayon::current_num_threads()
        }
        _ => 1,
    };
    // gemm's own threading splits these thin products (a batch of rows against a long layer)
    // poorly; one band of the output per thread, each a single-threaded product, streams the
    // long operand once.
    let split_columns = n >= m;
    // Bands of whole 16-column or 4-row steps, so each band's product keeps gemm's full tiles.
    let (long, step) = if split_columns { (n, 16) } else { (m, 4) };
    let band = long.div_ceil(parts).div_ceil(step) * step;
    let c_ptr = SharedMut(c.as_mut_ptr());
    let bands = long.div_ceil(band);
    let run = |i: usize| {
        let (start, end) = (i * band, long.min(i * band + band));
        // SAFETY: `fits` and the length check above prove every index of the whole product in
        // bounds, and band `i` is a sub-product of it: rows or columns `start..end` of `c`
        // with the matching rows of `a` or columns of `b`. Bands write disjoint parts of `c`,
        // which is borrowed mutably, so nothing else aliases it.
        unsafe {
            let (rows, cols, c_at, a_at, b_at) = if split_columns {
                (m, end - start, start, 0, start * b.col_stride)
            } else {
                (end - start, n, start * n, start * a.row_stride, 0)
            };
            gemm::gemm(
                rows,
                cols,
                k,
                c_ptr.get().add(c_at),
                1,
                n as isize,
                accumulate,
                a.data.as_ptr().add(a_at),
                a.col_stride as isize,
                a.row_stride as isize,
                b.data.as_ptr().add(b_at),
                b.col_stride as isize,
                b.row_stride as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    if bands == 1 {
        run(0);
    } else {
        (0..bands).into_par_iter().for_each(run);
    }
}

/// `y = x · w` for one row `x` (`rows` values) and a row-major `rows × cols` matrix `w`: what a
/// Dense layer does for a single sample. The matrix is streamed once, row by row, with its rows
/// split over the worker threads; a GEMM would spend longer arranging it than multiplying.
pub fn row_times_matrix(y: &mut [f32], x: &[f32], w: &[f32], rows: usize, cols: usize) {
    assert!(x.len() >= rows && w.len() >= rows * cols && y.len() >= cols);
    let y = &mut y[..cols];
    let per_worker = rows.div_ceil(rayon::current_num_threads().max(1)).max(1);
    let partials: Vec<Vec<f32>> = x[..rows]
        .par_chunks(per_worker)
        .zip(w[..rows * cols].par_chunks(per_worker * cols))
        .map(|(x, w)| {
            let mut sums = vec![0.0; cols];
            accumulate_rows(&mut sums, x, w);
            sums
        })
        .collect();
    y.fill(0.0);
    for part in &partials {
        y.iter_mut().zip(part).for_each(|(t, p)| *t += p);
    }
}

crate::nn::simd::compiled_per_level! {
    /// `sums += Σᵢ x[i] · w[i]` over the rows `w[i]` of `w`.
    fn accumulate_rows(sums: &mut [f32], x: &[f32], w: &[f32]) = accumulate_rows_portable
}

#[inline(always)]
fn accumulate_rows_portable(sums: &mut [f32], x: &[f32], w: &[f32]) {
    for (&xi, row) in x.iter().zip(w.chunks_exact(sums.len())) {
        sums.iter_mut().zip(row).for_each(|(s, &v)| *s += xi * v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        (0..m * n)
            .map(|i| (0..k).map(|p| a[i / n * k + p] * b[p * n + i % n]).sum())
            .collect()
    }

    #[test]
    fn row_times_matrix_matches_the_definition() {
        let (k, n) = (1001, 37);
        let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let expected = naive(&x, &w, 1, k, n);
        let mut y = vec![f32::NAN; n];
        row_times_matrix(&mut y, &x, &w, k, n);
        assert!(y.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-3));
    }

    #[test]
    fn products_split_over_threads_match_the_definition() {
        for (m, k, n) in [(9, 1000, 40), (40, 1000, 9), (33, 700, 33)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let expected = naive(&a, &b, m, k, n);
            let mut c = vec![1.0; m * n];
            let (a, b) = (Mat::new(&a, m, k), Mat::new(&b, k, n));
            matmul(&mut c, a, b, true, Threads::All);
            assert!(c
                .iter()
                .zip(&expected)
                .all(|(x, y)| (x - 1.0 - y).abs() < 1e-3));
        }
    }

    #[test]
    fn products_and_transposes_match_the_definition() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let expected = naive(&a, &b, m, k, n);
        let mut c = vec![0.0; m * n];
        matmul(
            &mut c,
            Mat::new(&a, m, k),
            Mat::new(&b, k, n),
            false,
            Threads::One,
        );
        assert!(c.iter().zip(&expected).all(|(x, y)| (x - y).abs() < 1e-5));

        // (bᵀ aᵀ)ᵀ = a b: compute bᵀ aᵀ from the same buffers through transposed views.
        let mut ct = vec![0.0; n * m];
        matmul(
            &mut ct,
            Mat::new(&b, k, n).t(),
            Mat::new(&a, m, k).t(),
            false,
            Threads::All,
        );
        for i in 0..m {
            for j in 0..n {
                assert!((ct[j * m + i] - expected[i * n + j]).abs() < 1e-5);
            }
        }

        matmul(
            &mut c,
            Mat::new(&a, m, k),
            Mat::new(&b, k, n),
            true,
            Threads::One,
        );
        assert!(c
            .iter()
            .zip(&expected)
            .all(|(x, y)| (x - 2.0 * y).abs() < 1e-5));
    }
}
