//! The integer product behind quantized CONV_2D and FULLY_CONNECTED: rows of inputs (receptive
//! fields or feature vectors) times rows of weights, each sum exact in 32 bits, then
//! requantized. Both sides carry their zero points already subtracted and widen to 16 bits, so
//! int8 and legacy uint8 models (whose weights have zero points too) take one path, and each
//! product is `(x − x_zero) × (w − w_zero)` as LiteRT's reference kernels form it.

use super::padded::PaddedImage;
#[cfg(target_arch = "x86_64")]
use super::requantize_avx512::InRegisters;
use super::{Quantized, Requantize};
use crate::nn::simd::Level;
use crate::nn::thread_pool::{for_each_part, for_each_task, threads, SharedMut};
use std::cell::RefCell;
use std::ops::Range;

/// Filters per panel: the weights are packed so that one 512-bit load holds a pair of depth
/// values for each of 16 filters, the operand of one multiply-add of 16-bit pairs into 32-bit
/// sums (`vpmaddwd`).
const PANEL: usize = 16;
/// Rows one task makes and multiplies at a time: their fields stay in the level-1 cache while
/// each panel of weights passes over them (up to a depth of 1024 bytes), and requantizing
/// them pays each channel group's set-up once for 32 rows (1–3% faster than 16 on the
/// MobileNets and ResNet50 here).
const ROWS_PER_BLOCK: usize = 32;
/// Output pixels up to which a convolution with many panels of weights splits the panels
/// over the threads, not the rows (see `QuantizedWeights::few_pixels_for_the_weights`).
const FEW_PIXELS: usize = 256;
/// Products below which one thread does the whole operator: handing out tasks costs more.
const PARALLEL_PRODUCTS: usize = 1 << 17;

pub(crate) struct QuantizedWeights {
    filters: usize,
    /// Pairs of depth values per row (the depth, rounded up to even, halved).
    pairs: usize,
    /// Per panel of [`PANEL`] filters, per pair of depth values, the pair of each filter:
    /// `[panel][pair][filter][2]`, zero past the last filter and the depth.
    panels: Vec<i16>,
    bias: Vec<i32>,
    /// The same weights as bytes for AVX-512 VNNI, when the processor has it and they are int8
    /// with zero point 0.
    quads: Option<Quads>,
}

/// int8 weights packed for `vpdpbusd` (unsigned bytes times signed bytes, four at a time into
/// each 32-bit sum): per panel of [`PANEL`] filters, per quad of depth values, each filter's
/// four bytes; and each filter's sum, to undo the shift that makes the inputs unsigned.
struct Quads {
    quads: usize,
    values: Vec<i8>,
    filter_sums: Vec<i32>,
}

impl Quads {
    fn new<W: Quantized>(weights: &[W], filters: usize, depth: usize) -> Self {
        let quads = depth.div_ceil(4);
        let mut values = vec![0i8; filters.div_ceil(PANEL) * quads * PANEL * 4];
        let mut filter_sums = vec![0i32; filters];
        for (f, w) in weights.chunks_exact(depth).enumerate().take(filters) {
            let (panel, lane) = (f / PANEL, f % PANEL);
            for (k, w) in w.iter().enumerate() {
                values[((panel * quads + k / 4) * PANEL + lane) * 4 + k % 4] = w.get() as i8;
                filter_sums[f] += w.get();
            }
        }
        Quads {
            quads,
            values,
            filter_sums,
        }
    }
}

/// Whether the int8 product may use AVX-512 VNNI: the processor has it and the selected level
/// is AVX-512.
fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let level = Level::selected();
        level == Level::Avx512
            && level.is_available()
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl QuantizedWeights {
    /// `weights` holds `filters` rows of `depth` values; `zero_points` has one per filter (or
    /// one for all).
    pub fn new<W: Quantized>(
        weights: &[W],
        filters: usize,
        depth: usize,
        zero_points: &[i32],
        bias: Option<&[i32]>,
    ) -> Self {
        let pairs = depth.div_ceil(2);
        let mut panels = vec![0i16; filters.div_ceil(PANEL) * pairs * PANEL * 2];
        for (f, w) in weights.chunks_exact(depth).enumerate().take(filters) {
            let zero = zero_points[f % zero_points.len()];
            let (panel, lane) = (f / PANEL, f % PANEL);
            for (k, w) in w.iter().enumerate() {
                panels[((panel * pairs + k / 2) * PANEL + lane) * 2 + k % 2] =
                    (w.get() - zero) as i16;
            }
        }
        let signed_bytes = W::MIN == i8::MIN as i32 && zero_points.iter().all(|&z| z == 0);
        QuantizedWeights {
            filters,
            pairs,
            panels,
            bias: bias.map_or_else(|| vec![0; filters], <[i32]>::to_vec),
            quads: (signed_bytes && vnni()).then(|| Quads::new(weights, filters, depth)),
        }
    }

    /// The weights as bytes, where `takes_bytes()`.
    fn byte_quads(&self) -> &Quads {
        self.quads
            .as_ref()
            .expect("takes_bytes() checked by the caller")
    }

    /// Whether [`QuantizedWeights::multiply_bytes`] applies (AVX-512 VNNI and int8 weights).
    pub fn takes_bytes(&self) -> bool {
        self.quads.is_some()
    }

    /// The length of each row `make_bytes` writes (the depth, padded with zeros to four).
    pub fn byte_stride(&self) -> usize {
        self.quads.as_ref().map_or(0, |q| q.quads * 4)
    }

    /// As [`QuantizedWeights::multiply`] with rows of unsigned bytes (each value less its zero
    /// point plus the constant `offset`, zeros after the depth): four products per byte lane
    /// (VNNI), less `offset ×` each filter's sum.
    pub fn multiply_bytes<T: Quantized>(
        &self,
        make_bytes: impl Fn(Range<usize>, &mut [u8]) + Sync,
        rows: usize,
        offset: i32,
        out: &mut [T],
        stage: &Requantize,
    ) {
        let quads = self.byte_quads();
        assert!(stage.scaling.len() >= self.filters);
        let bias = self.shifted_bias(quads, offset);
        let sums = |fields: &[u8], panels: Range<usize>, sums: &mut [i32]| {
            self.byte_sums(quads, &bias, fields, panels, sums)
        };
        let finish =
            |_, channels, sums: &[i32], out: &mut [T]| stage.store_rows(channels, sums, out);
        #[cfg(target_arch = "x86_64")]
        if let Some(registers) = InRegisters::new(stage) {
            let outputs = |fields: &[u8], out: &mut [T]| {
                self.byte_outputs(quads, &bias, fields, &registers, T::bytes_mut(out))
            };
            let direct: Option<&Direct<u8, T>> = Some(&outputs);
            return self.run(
                make_bytes,
                (quads.quads * 4, rows),
                out,
                sums,
                finish,
                direct,
            );
        }
        self.run(make_bytes, (quads.quads * 4, rows), out, sums, finish, None);
    }

    /// The outputs of byte rows `fields` requantized by `stage` straight from the product's
    /// registers.
    #[cfg(target_arch = "x86_64")]
    fn byte_outputs(
        &self,
        quads: &Quads,
        bias: &[i32],
        fields: &[u8],
        stage: &InRegisters,
        out: &mut [u8],
    ) {
        let stride = quads.quads * 4;
        let rows = (fields, &[0][..], stride);
        self.requantized_rows(quads, rows, fields.len() / stride, bias, stage, out);
    }

    /// `count` rows of outputs requantized by `stage` straight from the product's registers,
    /// whole panels two at a time, as in [`QuantizedWeights::byte_sums`]: row `r` read from
    /// `bytes` in runs of `quads.quads / segments.len()` quads at `segments[s] + r × step`
    /// (as `tile_bytes` reads them), written to `out[r × filters..]`.
    #[cfg(target_arch = "x86_64")]
    fn requantized_rows(
        &self,
        quads: &Quads,
        (bytes, segments, step): (&[u8], &[usize], usize),
        count: usize,
        bias: &[i32],
        stage: &InRegisters,
        out: &mut [u8],
    ) {
        let filters = self.filters;
        let per_run = quads.quads / segments.len().max(1);
        let (panels, panel_len) = (filters.div_ceil(PANEL), quads.quads * PANEL * 4);
        let last = segments.iter().max().copied().unwrap_or(0);
        if count == 0 {
            return;
        }
        assert!(
            out.len() >= count * filters
                && bias.len() >= filters
                && bytes.len() >= last + (count - 1) * step + per_run * 4
                && quads.values.len() >= panels * panel_len
        );
        let mut p = 0;
        while p < panels {
            let pair = p + 2 <= panels;
            let weights = (&quads.values[p * panel_len..], panel_len);
            let (bias, channels) = (&bias[p * PANEL..], (p * PANEL, filters));
            let out = (out[p * PANEL..].as_mut_ptr(), filters, count);
            let rows = (segments, step);
            // SAFETY: `Quads` exist only where `vnni()` found the features, and `InRegisters`
            // only with AVX-512 BW and VL; the tiles read each row's runs, the pair's panels
            // and their filters' biases, and write those filters of each row of `out`, all in
            // bounds by the assert above.
            unsafe {
                match pair {
                    true => x86::tile_vnni_requantized::<2>(
                        bytes, rows, weights, per_run, bias, stage, channels, out,
                    ),
                    false => x86::tile_vnni_requantized::<1>(
                        bytes, rows, weights, per_run, bias, stage, channels, out,
                    ),
                }
            }
            p += if pair { 2 } else { 1 };
        }
    }

    /// The bias less what the inputs' shift to unsigned bytes adds: `offset` (the shift plus
    /// the zero point) times each filter's sum.
    fn shifted_bias(&self, quads: &Quads, offset: i32) -> Vec<i32> {
        self.bias
            .iter()
            .zip(&quads.filter_sums)
            .map(|(&b, &s)| b.wrapping_sub(offset.wrapping_mul(s)))
            .collect()
    }

    /// `out` (output pixels × filters) of a convolution whose windows VNNI reads straight from
    /// `image`, padded with `offset` (the shift plus the zero point): the weights must hold a
    /// window as `image.kernel_rows` runs of equal length, as [`PaddedImage`] lays them out.
    /// With `pool` other than (1, 1), the output is max-pooled by windows of that many rows
    /// and columns that tile it (the remainder dropped): the sums are pooled before they are
    /// requantized, which gives the same values because requantization never decreases, and
    /// requantizes a fraction of them. Output rows go to the threads; each is requantized
    /// once its sums are complete.
    pub fn convolve_bytes<T: Quantized>(
        &self,
        image: &PaddedImage,
        offset: i32,
        out: &mut [T],
        stage: &Requantize,
        pool: (usize, usize),
    ) {
        assert!(stage.scaling.len() >= self.filters);
        let unpooled = pool.0.max(1) == 1 && pool.1.max(1) == 1;
        if unpooled && self.few_pixels_for_the_weights(image) {
            return self.convolve_bytes_by_panels(image, offset, out, stage);
        }
        #[cfg(target_arch = "x86_64")]
        if let (Some(registers), true) = (InRegisters::new(stage), unpooled) {
            let quads = self.byte_quads();
            let bias = self.shifted_bias(quads, offset);
            let segments = image.kernel_row_starts();
            let row = |oy, _: &mut Vec<i32>, out: &mut [T]| {
                let out = T::bytes_mut(out);
                self.requantized_row(image, (quads, &segments), &bias, oy, &registers, out)
            };
            return self.for_each_output_row(image, (1, 1), out, row);
        }
        let store = |sums: &[i32], out: &mut [T]| {
            stage.store_pooled_rows(0..self.filters, pool.1.max(1), sums, out)
        };
        self.convolve_bytes_then(image, offset, out, pool, store);
    }

    /// Output row `oy` of [`QuantizedWeights::convolve_bytes`] requantized by `stage` straight
    /// from the product's registers.
    #[cfg(target_arch = "x86_64")]
    fn requantized_row(
        &self,
        image: &PaddedImage,
        (quads, segments): (&Quads, &[usize]),
        bias: &[i32],
        oy: usize,
        stage: &InRegisters,
        out: &mut [u8],
    ) {
        let bytes = &image.bytes[oy * image.line_step..];
        let rows = (bytes, segments, image.pixel_step);
        self.requantized_rows(quads, rows, image.out_cols, bias, stage, out);
    }

    /// Whether the image has so few pixels that the rows' tasks would each stream all the
    /// weights (ResNet50's 3×3 convolutions over 7×7 and 14×14: 2.4 MB of weights for 49
    /// pixels), and there are enough panels to share instead.
    fn few_pixels_for_the_weights(&self, image: &PaddedImage) -> bool {
        let pixels = image.out_rows * image.out_cols;
        pixels <= FEW_PIXELS && self.filters.div_ceil(PANEL) >= 4 * threads()
    }

    /// [`QuantizedWeights::convolve_bytes`] with the panels of weights, not the rows, split
    /// over the threads: each streams its share of the weights once, for every pixel.
    fn convolve_bytes_by_panels<T: Quantized>(
        &self,
        image: &PaddedImage,
        offset: i32,
        out: &mut [T],
        stage: &Requantize,
    ) {
        let quads = self.byte_quads();
        let (filters, cols, rows) = (self.filters, image.out_cols, image.out_rows);
        assert!(quads.quads.is_multiple_of(image.kernel_rows));
        assert!(out.len() >= rows * cols * filters);
        let bias = self.shifted_bias(quads, offset);
        let segments = image.kernel_row_starts();
        // Whole pairs of panels to each task (see `convolve_row`), two tasks a thread.
        let panel_count = filters.div_ceil(PANEL);
        let pairs = panel_count.div_ceil(2);
        let out = SharedMut(out.as_mut_ptr());
        for_each_part(pairs, threads() * 2, |own| {
            let panels = own.start * 2..(own.end * 2).min(panel_count);
            let channels = panels.start * PANEL..(panels.end * PANEL).min(filters);
            let width = channels.len();
            u8::with_scratch(|_, sums| {
                grow(sums, rows * cols * width);
                for (oy, row) in sums.chunks_exact_mut(cols * width).take(rows).enumerate() {
                    let panels = (panels.clone(), width);
                    self.convolve_row(image, (quads, &segments), &bias, (oy, false), panels, row);
                }
                for (pixel, sums) in sums.chunks_exact(width).take(rows * cols).enumerate() {
                    // SAFETY: these channels of this pixel of `out`, in bounds by the assert
                    // above; tasks take disjoint channels.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(
                            out.get().add(pixel * filters + channels.start),
                            width,
                        )
                    };
                    stage.store_rows(channels.clone(), sums, out);
                }
            });
        });
    }

    /// As [`QuantizedWeights::convolve_bytes`], each output row made by `finish(sums, row)`
    /// from its sums (bias included; with a pool, the maxima of the window's rows, their
    /// columns left to `finish` to pool).
    pub fn convolve_bytes_then<O: Send>(
        &self,
        image: &PaddedImage,
        offset: i32,
        out: &mut [O],
        pool: (usize, usize),
        finish: impl Fn(&[i32], &mut [O]) + Sync,
    ) {
        let quads = self.byte_quads();
        let (filters, cols) = (self.filters, image.out_cols);
        let pool_rows = pool.0.max(1);
        let bias = self.shifted_bias(quads, offset);
        let segments = image.kernel_row_starts();
        let row = |py: usize, sums: &mut Vec<i32>, out: &mut [O]| {
            sums.resize(cols * filters, 0);
            // The rows of a pooling window kept as their maxima, the columns pooled as they
            // are requantized.
            for r in 0..pool_rows {
                let row = (py * pool_rows + r, r > 0);
                let panels = (0..filters.div_ceil(PANEL), filters);
                self.convolve_row(image, (quads, &segments), &bias, row, panels, sums);
            }
            finish(sums, out);
        };
        self.for_each_output_row(image, pool, out, row);
    }

    /// Splits the (pooled) output rows of a convolution of `image` over the threads, each
    /// made by `row(index, scratch sums, its outputs)`.
    fn for_each_output_row<O: Send>(
        &self,
        image: &PaddedImage,
        pool: (usize, usize),
        out: &mut [O],
        row: impl Fn(usize, &mut Vec<i32>, &mut [O]) + Sync,
    ) {
        let quads = self.byte_quads();
        let (filters, cols) = (self.filters, image.out_cols);
        let (out_rows, out_cols) = (image.out_rows / pool.0.max(1), cols / pool.1.max(1));
        assert!(quads.quads.is_multiple_of(image.kernel_rows));
        assert!(out.len() >= out_rows * out_cols * filters);
        let products = image.out_rows * cols * filters * quads.quads * 4;
        let tasks = match products < PARALLEL_PRODUCTS {
            true => 1,
            false => out_rows.min(threads() * 4),
        };
        let out = SharedMut(out.as_mut_ptr());
        for_each_task(tasks, |task| {
            let rows = out_rows * task / tasks..out_rows * (task + 1) / tasks;
            u8::with_scratch(|_, sums| {
                for py in rows {
                    // SAFETY: output row `py`, in bounds by the assert above; tasks take
                    // disjoint rows.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(
                            out.get().add(py * out_cols * filters),
                            out_cols * filters,
                        )
                    };
                    row(py, sums, out);
                }
            });
        });
    }

    /// The sums of output row `oy` of [`QuantizedWeights::convolve_bytes`], bias included.
    /// `segments` are where each kernel row starts, relative to the window's first byte. With
    /// `keep_max`, each sum is the larger of it and the one already in `sums`.
    ///
    /// Only the filters of `panels` are made; `sums` holds `stride` values for each pixel, the
    /// first of them the panels' first filter's.
    #[allow(clippy::too_many_arguments)]
    fn convolve_row(
        &self,
        image: &PaddedImage,
        (quads, segments): (&Quads, &[usize]),
        bias: &[i32],
        (oy, keep_max): (usize, bool),
        (panels, stride): (Range<usize>, usize),
        sums: &mut [i32],
    ) {
        let (filters, cols, kernel_rows) = (self.filters, image.out_cols, image.kernel_rows);
        let per_row = quads.quads / kernel_rows;
        let panel_len = quads.values.len() / filters.div_ceil(PANEL);
        let base = panels.start * PANEL;
        let mut tile = [[0i32; PANEL]; TILE_ROWS];
        let mut p = panels.start;
        while p < panels.end {
            let first = p * PANEL;
            let width = PANEL.min(filters - first);
            // Two whole panels at a time: each broadcast input quad then feeds two
            // multiply-adds, and the loads no longer outnumber them.
            let pair = p + 1 < panels.end && filters - first >= 2 * PANEL;
            let weights = (&quads.values[p * panel_len..], panel_len);
            for ox in (0..cols).step_by(TILE_ROWS) {
                let count = TILE_ROWS.min(cols - ox);
                let at = oy * image.line_step + ox * image.pixel_step;
                let bytes = &image.bytes[at..];
                let step = image.pixel_step;
                let out = &mut sums[ox * stride + first - base..];
                let (bias, rows) = (&bias[first..], (stride, count, keep_max));
                if pair {
                    tile_bytes_onto::<2>(bytes, segments, step, weights, per_row, bias, out, rows);
                } else if width == PANEL {
                    tile_bytes_onto::<1>(bytes, segments, step, weights, per_row, bias, out, rows);
                } else {
                    let tile = &mut tile[..count];
                    tile_bytes(bytes, segments, step, weights.0, per_row, tile);
                    for (r, t) in tile.iter().enumerate() {
                        let sums = &mut out[r * stride..][..width];
                        for ((o, &t), &b) in sums.iter_mut().zip(t).zip(bias) {
                            let sum = b.wrapping_add(t);
                            *o = if keep_max { (*o).max(sum) } else { sum };
                        }
                    }
                }
            }
            p += if pair { 2 } else { 1 };
        }
    }

    /// The length of each row `make_rows` writes (the depth, padded with a zero to even).
    pub fn stride(&self) -> usize {
        self.pairs * 2
    }

    /// `out` (`rows × filters`) from rows that `make_rows(range, fields)` writes a block at a
    /// time, each as `stride()` values with the zero point subtracted and zeros after the depth.
    pub fn multiply<T: Quantized>(
        &self,
        make_rows: impl Fn(Range<usize>, &mut [i16]) + Sync,
        rows: usize,
        out: &mut [T],
        stage: &Requantize,
    ) {
        assert!(stage.scaling.len() >= self.filters);
        let sums = |fields: &[i16], panels, sums: &mut [i32]| self.sums(fields, panels, sums);
        let finish =
            |_, channels, sums: &[i32], out: &mut [T]| stage.store_rows(channels, sums, out);
        self.run(make_rows, (self.stride(), rows), out, sums, finish, None);
    }

    /// As [`QuantizedWeights::multiply`], each row's sums (bias included) turned into its
    /// outputs by `finish(row, channels, sums, outputs)`, for a range of its channels.
    pub fn multiply_then<O: Send>(
        &self,
        make_rows: impl Fn(Range<usize>, &mut [i16]) + Sync,
        rows: usize,
        out: &mut [O],
        finish: impl Fn(usize, Range<usize>, &[i32], &mut [O]) + Sync,
    ) {
        let sums = |fields: &[i16], panels, sums: &mut [i32]| self.sums(fields, panels, sums);
        self.run(
            make_rows,
            (self.stride(), rows),
            out,
            sums,
            by_row(finish),
            None,
        );
    }

    /// As [`QuantizedWeights::multiply_then`] on rows of unsigned bytes (`make_bytes` as for
    /// [`QuantizedWeights::multiply_bytes`]), where `takes_bytes()`: `finish` gets the plain
    /// products of the byte rows, without the bias, for callers whose rows have offsets of
    /// their own to take back with [`QuantizedWeights::byte_filter_sums`].
    pub fn multiply_bytes_then<O: Send>(
        &self,
        make_bytes: impl Fn(Range<usize>, &mut [u8]) + Sync,
        rows: usize,
        out: &mut [O],
        finish: impl Fn(usize, Range<usize>, &[i32], &mut [O]) + Sync,
    ) {
        let quads = self.byte_quads();
        let zeros = vec![0; self.filters];
        let sums = |fields: &[u8], panels: Range<usize>, sums: &mut [i32]| {
            self.byte_sums(quads, &zeros, fields, panels, sums)
        };
        self.run(
            make_bytes,
            (quads.quads * 4, rows),
            out,
            sums,
            by_row(finish),
            None,
        );
    }

    /// Each filter's sum of weights, where `takes_bytes()`.
    pub fn byte_filter_sums(&self) -> Option<&[i32]> {
        self.quads.as_ref().map(|q| &q.filter_sums[..])
    }

    /// Splits the rows over the threads in blocks: each block's rows made, multiplied by
    /// `sums(rows, panels, sums)`, and finished by `finish(first row, channels, the block's
    /// sums, its outputs)`, or with `direct` made into outputs at once. Too few rows to share
    /// (a batch-1 FULLY_CONNECTED) split the panels instead.
    fn run<R: Row, O: Send>(
        &self,
        make_rows: impl Fn(Range<usize>, &mut [R]) + Sync,
        (stride, rows): (usize, usize),
        out: &mut [O],
        sums: impl Fn(&[R], Range<usize>, &mut [i32]) + Sync,
        finish: impl Fn(usize, Range<usize>, &[i32], &mut [O]) + Sync,
        direct: Option<&Direct<R, O>>,
    ) {
        assert!(out.len() >= rows * self.filters);
        let blocks = rows.div_ceil(ROWS_PER_BLOCK);
        let panels = self.filters.div_ceil(PANEL);
        let shared = rows * self.filters * stride >= PARALLEL_PRODUCTS;
        if shared && blocks < threads() && panels > 1 {
            return self.run_by_panels(make_rows, stride, rows, out, sums, finish);
        }
        // Each thread takes its own fraction of the rows (see `for_each_part`), in up to four
        // tasks of whole tiles, at least two a task where there are few: every task streams
        // all the weights.
        let tiles = rows.div_ceil(TILE_ROWS);
        let threads = threads();
        let tasks = match shared {
            true => threads * (tiles / (2 * threads)).clamp(1, 4),
            false => 1,
        };
        let out = SharedMut(out.as_mut_ptr());
        for_each_part(tiles, tasks, |task_tiles| {
            let first = task_tiles.start * TILE_ROWS;
            let last = (task_tiles.end * TILE_ROWS).min(rows);
            R::with_scratch(|fields, block_sums| {
                // Grown, never shrunk: every value read is written first, so refilling the
                // scratch for each operator would only cost time.
                grow(fields, ROWS_PER_BLOCK * stride);
                grow(block_sums, ROWS_PER_BLOCK * self.filters);
                for start in (first..last).step_by(ROWS_PER_BLOCK) {
                    let range = start..(start + ROWS_PER_BLOCK).min(last);
                    let count = range.len();
                    let fields = &mut fields[..count * stride];
                    make_rows(range, fields);
                    // SAFETY: rows `start..start + count` of `out`, which the assert above
                    // showed in bounds; tasks take disjoint rows.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(
                            out.get().add(start * self.filters),
                            count * self.filters,
                        )
                    };
                    if let Some(direct) = direct {
                        direct(fields, out);
                        continue;
                    }
                    let block_sums = &mut block_sums[..count * self.filters];
                    sums(fields, 0..panels, block_sums);
                    finish(start, 0..self.filters, block_sums, out);
                }
            });
        });
    }

    /// [`QuantizedWeights::run`] for a few long rows: made once, then each thread takes a
    /// share of the panels, so that every thread streams its own part of the weights.
    fn run_by_panels<R: Row, O: Send>(
        &self,
        make_rows: impl Fn(Range<usize>, &mut [R]),
        stride: usize,
        rows: usize,
        out: &mut [O],
        sums: impl Fn(&[R], Range<usize>, &mut [i32]) + Sync,
        finish: impl Fn(usize, Range<usize>, &[i32], &mut [O]) + Sync,
    ) {
        // Taken out of the scratch while the tasks borrow theirs.
        let mut fields = R::with_scratch(|fields, _| std::mem::take(fields));
        fields.resize(rows * stride, R::default());
        make_rows(0..rows, &mut fields);
        let (filters, panels) = (self.filters, self.filters.div_ceil(PANEL));
        let tasks = panels.min(threads());
        let shared_out = SharedMut(out.as_mut_ptr());
        for_each_task(tasks, |task| {
            let own = panels * task / tasks..panels * (task + 1) / tasks;
            let channels = own.start * PANEL..(own.end * PANEL).min(filters);
            let width = channels.len();
            R::with_scratch(|_, part| {
                part.resize(rows * width, 0);
                sums(&fields, own, part);
                for (row, part) in part.chunks_exact(width).enumerate() {
                    // SAFETY: these channels of row `row` of `out`, in bounds by `run`'s
                    // assert; tasks take disjoint channels.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(
                            shared_out.get().add(row * filters + channels.start),
                            width,
                        )
                    };
                    finish(row, channels.clone(), part, out);
                }
            });
        });
        R::with_scratch(|scratch, _| *scratch = fields);
    }
}

/// Outputs made from a block of rows without stored sums: `direct(rows, outputs)`.
type Direct<'a, R, O> = dyn Fn(&[R], &mut [O]) + Sync + 'a;

/// `v` at least `len` long.
fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

/// A finish of whole blocks of rows from one of each row, `finish(row, channels, sums,
/// outputs)`.
fn by_row<O>(
    finish: impl Fn(usize, Range<usize>, &[i32], &mut [O]) + Sync,
) -> impl Fn(usize, Range<usize>, &[i32], &mut [O]) + Sync {
    move |first, channels, sums, out| {
        let width = channels.len();
        let rows = sums.chunks_exact(width).zip(out.chunks_exact_mut(width));
        for (i, (s, o)) in rows.enumerate() {
            finish(first + i, channels.clone(), s, o);
        }
    }
}

/// The element of the rows a product multiplies: 16-bit values, or bytes for VNNI. Each has
/// its thread's scratch for a block of rows and their sums.
trait Row: Copy + Default + Send + Sync + 'static {
    fn with_scratch<T>(f: impl FnOnce(&mut Vec<Self>, &mut Vec<i32>) -> T) -> T;
}

thread_local! {
    static SCRATCH: RefCell<(Vec<i16>, Vec<i32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    static BYTE_SCRATCH: RefCell<(Vec<u8>, Vec<i32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl Row for i16 {
    fn with_scratch<T>(f: impl FnOnce(&mut Vec<Self>, &mut Vec<i32>) -> T) -> T {
        SCRATCH.with_borrow_mut(|(rows, sums)| f(rows, sums))
    }
}

impl Row for u8 {
    fn with_scratch<T>(f: impl FnOnce(&mut Vec<Self>, &mut Vec<i32>) -> T) -> T {
        BYTE_SCRATCH.with_borrow_mut(|(rows, sums)| f(rows, sums))
    }
}

impl QuantizedWeights {
    /// `sums[r × width + f] = bias[f] + fields row r · weights row f` for the filters of
    /// `panels` (`width` of them), a panel at a time over tiles of rows, at the selected
    /// instruction set.
    fn sums(&self, fields: &[i16], panels: Range<usize>, sums: &mut [i32]) {
        let level = Level::selected();
        let (stride, pairs) = (self.stride(), self.pairs);
        let tile = |fields: &[i16], panel: &[i16], tile: &mut [[i32; PANEL]]| {
            tile_sums(level, fields, stride, panel, pairs, tile)
        };
        let all = (&self.panels[..], &self.bias[..]);
        self.panel_sums(fields, stride, all, panels, sums, tile);
    }

    /// [`QuantizedWeights::sums`] on byte rows with the VNNI panels, on top of `bias`: whole
    /// panels two at a time, their tiles' sums stored straight into `sums` (16 accumulators of
    /// 32 registers, each quad of a row feeding two products); a last, partial panel through
    /// a tile of its own.
    fn byte_sums(
        &self,
        quads: &Quads,
        bias: &[i32],
        fields: &[u8],
        panels: Range<usize>,
        sums: &mut [i32],
    ) {
        let stride = quads.quads * 4;
        let rows = fields.len() / stride;
        let panel_len = quads.quads * PANEL * 4;
        let whole_panels = panels.start..panels.end.min(self.filters / PANEL);
        let first_channel = panels.start * PANEL;
        let width = (panels.end * PANEL).min(self.filters) - first_channel;
        let mut p = whole_panels.start;
        while p < whole_panels.end {
            let pair = p + 2 <= whole_panels.end;
            let weights = (&quads.values[p * panel_len..], panel_len);
            let bias = &bias[p * PANEL..];
            for start in (0..rows).step_by(TILE_ROWS) {
                let count = TILE_ROWS.min(rows - start);
                let bytes = &fields[start * stride..];
                let out = &mut sums[start * width + p * PANEL - first_channel..];
                let shape = (width, count, false);
                macro_rules! onto {
                    ($panels:literal) => {
                        tile_bytes_onto::<$panels>(
                            bytes,
                            &[0],
                            stride,
                            weights,
                            quads.quads,
                            bias,
                            out,
                            shape,
                        )
                    };
                }
                match pair {
                    true => onto!(2),
                    false => onto!(1),
                }
            }
            p += if pair { 2 } else { 1 };
        }
        if p < panels.end {
            let tile = |fields: &[u8], panel: &[i8], tile: &mut [[i32; PANEL]]| {
                tile_bytes(fields, &[0], stride, panel, quads.quads, tile)
            };
            let columns = (p * PANEL - first_channel, width);
            let weights = (
                &quads.values[p * panel_len..][..panel_len],
                &bias[p * PANEL..],
            );
            let partial = self.filters - p * PANEL;
            one_panel_sums(fields, stride, weights, partial, columns, sums, &tile);
        }
    }

    /// Walks `panels` of `weights` (`filters / PANEL` of them, rounded up) and tiles of rows
    /// of `fields`, each tile's sums from `tile`, written on top of `bias` as rows of the
    /// panels' filters.
    fn panel_sums<R, W>(
        &self,
        fields: &[R],
        stride: usize,
        (weights, bias): (&[W], &[i32]),
        panels: Range<usize>,
        sums: &mut [i32],
        tile: impl Fn(&[R], &[W], &mut [[i32; PANEL]]),
    ) {
        let filters = self.filters;
        let panel_len = weights.len() / filters.div_ceil(PANEL);
        let channels = panels.start * PANEL..(panels.end * PANEL).min(filters);
        for p in panels {
            let panel = &weights[p * panel_len..][..panel_len];
            let first = p * PANEL;
            let columns = (first - channels.start, channels.len());
            let width = PANEL.min(filters - first);
            one_panel_sums(
                fields,
                stride,
                (panel, &bias[first..]),
                width,
                columns,
                sums,
                &tile,
            );
        }
    }
}

/// The sums of one panel's first `width` filters with every row of `fields`, each tile's from
/// `tile`, on top of `bias`: columns `column…` of rows of `row_len` sums.
fn one_panel_sums<R, W>(
    fields: &[R],
    stride: usize,
    (panel, bias): (&[W], &[i32]),
    width: usize,
    (column, row_len): (usize, usize),
    sums: &mut [i32],
    tile: &impl Fn(&[R], &[W], &mut [[i32; PANEL]]),
) {
    let rows = fields.len() / stride;
    let mut tile_out = [[0i32; PANEL]; TILE_ROWS];
    for start in (0..rows).step_by(TILE_ROWS) {
        let count = TILE_ROWS.min(rows - start);
        let fields = &fields[start * stride..][..count * stride];
        tile(fields, panel, &mut tile_out[..count]);
        for (r, t) in tile_out[..count].iter().enumerate() {
            let out = &mut sums[(start + r) * row_len + column..][..width];
            for ((o, &t), &b) in out.iter_mut().zip(t).zip(bias) {
                *o = b.wrapping_add(t);
            }
        }
    }
}

/// The sums of `tile.len()` byte rows with one panel of byte quads: by VNNI, the only place
/// [`Quads`] are made. Row `r` is read in `segments.len()` runs of `quads` quads, run `s` at
/// `bytes[segments[s] + r × row_step..]` and taking the panel's quads `s × quads…`: one run of a
/// receptive field, or one per kernel row of a padded image.
fn tile_bytes(
    bytes: &[u8],
    segments: &[usize],
    row_step: usize,
    panel: &[i8],
    quads: usize,
    tile: &mut [[i32; PANEL]],
) {
    let last = segments.iter().max().copied().unwrap_or(0);
    assert!(
        !tile.is_empty()
            && bytes.len() >= last + (tile.len() - 1) * row_step + quads * 4
            && panel.len() >= segments.len() * quads * PANEL * 4
    );
    // SAFETY: `Quads` exist only where `vnni()` found the features; the assert bounds every
    // read.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        x86::tile_vnni(bytes, segments, row_step, panel, quads, tile)
    };
    #[cfg(not(target_arch = "x86_64"))]
    for (r, sums) in tile.iter_mut().enumerate() {
        *sums = [0; PANEL];
        for (s, &segment) in segments.iter().enumerate() {
            let row = &bytes[segment + r * row_step..];
            let weights = panel[s * quads * PANEL * 4..].chunks_exact(PANEL * 4);
            for (q, weights) in weights.take(quads).enumerate() {
                for (sum, w) in sums.iter_mut().zip(weights.chunks_exact(4)) {
                    let products = (0..4).map(|i| row[4 * q + i] as i32 * w[i] as i32);
                    *sum = sum.wrapping_add(products.sum());
                }
            }
        }
    }
}

/// [`tile_bytes`] for `P` whole neighbouring panels of `panels` (`panel_len` apart), the sums
/// starting from `bias` (their `P × PANEL` filters) and written straight to `rows` rows of
/// `out`, `out_stride` apart, or with `keep_max` each the larger of it and the value there.
#[allow(clippy::too_many_arguments)]
fn tile_bytes_onto<const P: usize>(
    bytes: &[u8],
    segments: &[usize],
    row_step: usize,
    (panels, panel_len): (&[i8], usize),
    quads: usize,
    bias: &[i32],
    out: &mut [i32],
    (out_stride, rows, keep_max): (usize, usize, bool),
) {
    let last = segments.iter().max().copied().unwrap_or(0);
    assert!(
        (1..=TILE_ROWS).contains(&rows)
            && bytes.len() >= last + (rows - 1) * row_step + quads * 4
            && panels.len() >= (P - 1) * panel_len + segments.len() * quads * PANEL * 4
            && bias.len() >= P * PANEL
            && out.len() >= (rows - 1) * out_stride + P * PANEL
    );
    // SAFETY: as in `tile_bytes`; the assert bounds every read and write.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        x86::tile_vnni_onto::<P>(
            bytes,
            segments,
            row_step,
            (panels, panel_len),
            quads,
            bias,
            out,
            (out_stride, rows, keep_max),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    for p in 0..P {
        let mut tile = [[0i32; PANEL]; TILE_ROWS];
        let panel = &panels[p * panel_len..];
        tile_bytes(bytes, segments, row_step, panel, quads, &mut tile[..rows]);
        for (r, t) in tile[..rows].iter().enumerate() {
            let out = &mut out[r * out_stride + p * PANEL..][..PANEL];
            for ((o, &t), &b) in out.iter_mut().zip(t).zip(&bias[p * PANEL..]) {
                let sum = b.wrapping_add(t);
                *o = if keep_max { (*o).max(sum) } else { sum };
            }
        }
    }
}

/// Rows per tile: each keeps [`PANEL`] sums in registers (one AVX-512 vector, two AVX2 ones).
const TILE_ROWS: usize = 8;

/// The sums of `tile.len()` rows of `fields` (at most [`TILE_ROWS`]) with one panel.
fn tile_sums(
    level: Level,
    fields: &[i16],
    stride: usize,
    panel: &[i16],
    pairs: usize,
    tile: &mut [[i32; PANEL]],
) {
    assert!(
        fields.len() >= tile.len() * stride
            && stride >= pairs * 2
            && panel.len() >= pairs * PANEL * 2
    );
    match level {
        // SAFETY: the processor has the level's features (checked), and the assert above bounds
        // every read.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 if level.is_available() && std::is_x86_feature_detected!("avx512bw") => unsafe {
            x86::tile_avx512(fields, stride, panel, pairs, tile)
        },
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 | Level::Avx2 if Level::Avx2.is_available() => unsafe {
            x86::tile_avx2(fields, stride, panel, pairs, tile)
        },
        _ => tile_portable(fields, stride, panel, pairs, tile),
    }
}

fn tile_portable(
    fields: &[i16],
    stride: usize,
    panel: &[i16],
    pairs: usize,
    tile: &mut [[i32; PANEL]],
) {
    for (row, sums) in fields.chunks_exact(stride).zip(tile.iter_mut()) {
        *sums = [0; PANEL];
        for (p, weights) in panel.chunks_exact(PANEL * 2).take(pairs).enumerate() {
            let (a, b) = (row[2 * p] as i32, row[2 * p + 1] as i32);
            for (s, w) in sums.iter_mut().zip(weights.chunks_exact(2)) {
                *s = s.wrapping_add(a * w[0] as i32 + b * w[1] as i32);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PANEL, TILE_ROWS};
    use crate::nn::kernels::packed_gemm::row_tiles;
    use crate::nn::kernels::quantized::requantize_avx512::{
        row_bytes, InRegisters, RegisterChannels,
    };
    use std::arch::x86_64::*;

    /// Up to 8 rows, one 16-lane vector of sums each: per pair of depth values, the pair
    /// broadcast from each row times the panel's pairs.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn tile_avx512(
        fields: &[i16],
        stride: usize,
        panel: &[i16],
        pairs: usize,
        tile: &mut [[i32; PANEL]],
    ) {
        for (r, height) in row_tiles::<TILE_ROWS>(0..tile.len()) {
            let (fields, tile) = (&fields[r * stride..], &mut tile[r..r + height]);
            match height {
                8 => rows_avx512::<8>(fields, stride, panel, pairs, tile),
                4 => rows_avx512::<4>(fields, stride, panel, pairs, tile),
                2 => rows_avx512::<2>(fields, stride, panel, pairs, tile),
                _ => rows_avx512::<1>(fields, stride, panel, pairs, tile),
            }
        }
    }

    #[inline(always)]
    unsafe fn rows_avx512<const R: usize>(
        fields: &[i16],
        stride: usize,
        panel: &[i16],
        pairs: usize,
        tile: &mut [[i32; PANEL]],
    ) {
        let (a, w) = (fields.as_ptr(), panel.as_ptr());
        let mut acc = [_mm512_setzero_si512(); R];
        for p in 0..pairs {
            let weights = _mm512_loadu_si512(w.add(p * PANEL * 2) as *const _);
            for (r, acc) in acc.iter_mut().enumerate() {
                let pair = (a.add(r * stride + 2 * p) as *const i32).read_unaligned();
                *acc = _mm512_add_epi32(*acc, _mm512_madd_epi16(_mm512_set1_epi32(pair), weights));
            }
        }
        for (sums, acc) in tile.iter_mut().zip(acc) {
            _mm512_storeu_si512(sums.as_mut_ptr() as *mut _, acc);
        }
    }

    /// Up to 8 rows of bytes, one 16-lane vector of sums each: per quad of depth values, the
    /// quad broadcast from each row dotted with each filter's (`vpdpbusd`), over every segment
    /// of the rows (see `tile_bytes`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile_vnni(
        bytes: &[u8],
        segments: &[usize],
        row_step: usize,
        panel: &[i8],
        quads: usize,
        tile: &mut [[i32; PANEL]],
    ) {
        let out = tile.as_mut_ptr() as *mut i32;
        rows_vnni_any(
            bytes,
            segments,
            row_step,
            panel,
            quads,
            tile.len(),
            _mm512_setzero_si512(),
            out,
            PANEL,
        );
    }

    /// As [`tile_vnni`] for `P` neighbouring panels (`panel_len` apart), the sums starting from
    /// `bias` (`P × 16` filters) and written to `rows` rows of `out`, `out_stride` apart (with
    /// `keep_max`, the larger of each and the value there).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile_vnni_onto<const P: usize>(
        bytes: &[u8],
        segments: &[usize],
        row_step: usize,
        (panels, panel_len): (&[i8], usize),
        quads: usize,
        bias: &[i32],
        out: &mut [i32],
        (out_stride, rows, keep_max): (usize, usize, bool),
    ) {
        let mut init = [_mm512_setzero_si512(); P];
        for (p, init) in init.iter_mut().enumerate() {
            *init = _mm512_loadu_si512(bias.as_ptr().add(p * PANEL) as *const _);
        }
        let weights = (panels.as_ptr(), panel_len);
        let out = (out.as_mut_ptr(), out_stride, keep_max);
        // Short tiles (all of a 7-wide image's) in 4, 2 and 1 rows: one row at a time loads the
        // panels' weights for each, and ran at a fifth of the speed.
        for (r, height) in row_tiles::<TILE_ROWS>(0..rows) {
            let bytes = &bytes[r * row_step..];
            let out = (out.0.add(r * out_stride), out_stride, keep_max);
            match height {
                8 => rows_vnni::<8, P>(bytes, segments, row_step, weights, quads, init, out),
                4 => rows_vnni::<4, P>(bytes, segments, row_step, weights, quads, init, out),
                2 => rows_vnni::<2, P>(bytes, segments, row_step, weights, quads, init, out),
                _ => rows_vnni::<1, P>(bytes, segments, row_step, weights, quads, init, out),
            }
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows_vnni_any(
        bytes: &[u8],
        segments: &[usize],
        row_step: usize,
        panel: &[i8],
        quads: usize,
        rows: usize,
        init: __m512i,
        out: *mut i32,
        out_stride: usize,
    ) {
        let (weights, init) = ((panel.as_ptr(), 0), [init]);
        for (r, height) in row_tiles::<TILE_ROWS>(0..rows) {
            let bytes = &bytes[r * row_step..];
            let out = (out.add(r * out_stride), out_stride, false);
            match height {
                8 => rows_vnni::<8, 1>(bytes, segments, row_step, weights, quads, init, out),
                4 => rows_vnni::<4, 1>(bytes, segments, row_step, weights, quads, init, out),
                2 => rows_vnni::<2, 1>(bytes, segments, row_step, weights, quads, init, out),
                _ => rows_vnni::<1, 1>(bytes, segments, row_step, weights, quads, init, out),
            }
        }
    }

    /// `R` rows by `P` panels of sums, each starting from `init` and stored at
    /// `out + r × stride + p × 16` (with `keep_max`, the larger of it and the value there).
    #[inline(always)]
    unsafe fn rows_vnni<const R: usize, const P: usize>(
        bytes: &[u8],
        segments: &[usize],
        row_step: usize,
        (panels, panel_len): (*const i8, usize),
        quads: usize,
        init: [__m512i; P],
        (out, out_stride, keep_max): (*mut i32, usize, bool),
    ) {
        let acc = accumulated::<R, P>(bytes, segments, row_step, (panels, panel_len), quads, init);
        for (r, acc) in acc.into_iter().enumerate() {
            for (p, acc) in acc.into_iter().enumerate() {
                let to = out.add(r * out_stride + p * PANEL) as *mut __m512i;
                let acc = match keep_max {
                    true => _mm512_max_epi32(_mm512_loadu_si512(to as *const _), acc),
                    false => acc,
                };
                _mm512_storeu_si512(to as *mut _, acc);
            }
        }
    }

    /// `R` rows by `P` panels of sums, each starting from `init`.
    #[inline(always)]
    unsafe fn accumulated<const R: usize, const P: usize>(
        bytes: &[u8],
        segments: &[usize],
        row_step: usize,
        (panels, panel_len): (*const i8, usize),
        quads: usize,
        init: [__m512i; P],
    ) -> [[__m512i; P]; R] {
        let mut acc = [init; R];
        for (s, &segment) in segments.iter().enumerate() {
            let a = bytes.as_ptr().add(segment);
            let w = panels.add(s * quads * PANEL * 4);
            for q in 0..quads {
                let mut weights = [_mm512_setzero_si512(); P];
                for (p, weights) in weights.iter_mut().enumerate() {
                    *weights = _mm512_loadu_si512(w.add(p * panel_len + q * PANEL * 4) as *const _);
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let quad = _mm512_set1_epi32(
                        (a.add(r * row_step + 4 * q) as *const i32).read_unaligned(),
                    );
                    for (acc, &weights) in acc.iter_mut().zip(&weights) {
                        *acc = _mm512_dpbusd_epi32(*acc, quad, weights);
                    }
                }
            }
        }
        acc
    }

    /// As [`tile_vnni_onto`], the sums requantized by `stage` while still in registers and stored as bytes: `rows` rows of `out`,
    /// `out_stride` apart, each the `P × 16` channels from `first` (the last panel's only
    /// those below `filters`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile_vnni_requantized<const P: usize>(
        bytes: &[u8],
        (segments, row_step): (&[usize], usize),
        (panels, panel_len): (&[i8], usize),
        quads: usize,
        bias: &[i32],
        stage: &InRegisters,
        (first, filters): (usize, usize),
        (out, out_stride, rows): (*mut u8, usize, usize),
    ) {
        let lanes = |p: usize| (filters - first - p * PANEL).min(PANEL);
        let mut init = [_mm512_setzero_si512(); P];
        for (p, init) in init.iter_mut().enumerate() {
            let mask = ((1u32 << lanes(p)) - 1) as __mmask16;
            *init = _mm512_maskz_loadu_epi32(mask, bias.as_ptr().add(p * PANEL) as *const _);
        }
        let mut channels = [stage.channels(first, lanes(0)); P];
        for (p, channels) in channels.iter_mut().enumerate().skip(1) {
            *channels = stage.channels(first + p * PANEL, lanes(p));
        }
        let weights = (panels.as_ptr(), panel_len);
        for (r, height) in row_tiles::<TILE_ROWS>(0..rows) {
            let bytes = &bytes[r * row_step..];
            let out = (out.add(r * out_stride), out_stride);
            macro_rules! rows {
                ($r:literal) => {{
                    let acc = accumulated::<$r, P>(bytes, segments, row_step, weights, quads, init);
                    store_requantized(acc, stage, &channels, out)
                }};
            }
            match height {
                8 => rows!(8),
                4 => rows!(4),
                2 => rows!(2),
                _ => rows!(1),
            }
        }
    }

    /// `R` rows by `P` panels of sums requantized and stored as bytes at `out + r × stride +
    /// p × 16`: two panels of two rows at a time (each row's 32 bytes then stored at once),
    /// or four rows of one panel (fewer rows padded with the last).
    #[inline(always)]
    unsafe fn store_requantized<const R: usize, const P: usize>(
        acc: [[__m512i; P]; R],
        stage: &InRegisters,
        channels: &[RegisterChannels; P],
        (out, out_stride): (*mut u8, usize),
    ) {
        if P == 2 {
            let (a, b) = (&channels[0], &channels[P - 1]);
            for first in (0..R).step_by(2) {
                let second = (first + 1).min(R - 1);
                let sums = [
                    acc[first][0],
                    acc[first][P - 1],
                    acc[second][0],
                    acc[second][P - 1],
                ];
                let packed = stage.bytes([a, b, a, b], sums);
                let to = out.add(first * out_stride);
                stage.store_two(b, _mm512_castsi512_si256(packed), to);
                if second > first {
                    let high = _mm512_extracti64x4_epi64::<1>(packed);
                    stage.store_two(b, high, to.add(out_stride));
                }
            }
            return;
        }
        for (p, channels) in channels.iter().enumerate() {
            for first in (0..R).step_by(4) {
                let mut four = [acc[first][p]; 4];
                for (i, row) in four.iter_mut().enumerate().skip(1) {
                    *row = acc[(first + i).min(R - 1)][p];
                }
                let packed = row_bytes(stage.bytes([channels; 4], four));
                for (i, &bytes) in packed.iter().enumerate().take(R - first) {
                    let to = out.add((first + i) * out_stride + p * PANEL);
                    stage.store(channels, bytes, to);
                }
            }
        }
    }

    /// As [`tile_avx512`] with two 8-lane vectors per row, four rows at a time (16 registers).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2(
        fields: &[i16],
        stride: usize,
        panel: &[i16],
        pairs: usize,
        tile: &mut [[i32; PANEL]],
    ) {
        let mut r = 0;
        while r + 4 <= tile.len() {
            rows_avx2::<4>(
                &fields[r * stride..],
                stride,
                panel,
                pairs,
                &mut tile[r..r + 4],
            );
            r += 4;
        }
        while r < tile.len() {
            rows_avx2::<1>(
                &fields[r * stride..],
                stride,
                panel,
                pairs,
                &mut tile[r..r + 1],
            );
            r += 1;
        }
    }

    #[inline(always)]
    unsafe fn rows_avx2<const R: usize>(
        fields: &[i16],
        stride: usize,
        panel: &[i16],
        pairs: usize,
        tile: &mut [[i32; PANEL]],
    ) {
        let (a, w) = (fields.as_ptr(), panel.as_ptr());
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        for p in 0..pairs {
            let w0 = _mm256_loadu_si256(w.add(p * PANEL * 2) as *const _);
            let w1 = _mm256_loadu_si256(w.add(p * PANEL * 2 + PANEL) as *const _);
            for (r, acc) in acc.iter_mut().enumerate() {
                let pair =
                    _mm256_set1_epi32((a.add(r * stride + 2 * p) as *const i32).read_unaligned());
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(pair, w0));
                acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(pair, w1));
            }
        }
        for (sums, acc) in tile.iter_mut().zip(acc) {
            _mm256_storeu_si256(sums.as_mut_ptr() as *mut _, acc[0]);
            _mm256_storeu_si256(sums.as_mut_ptr().add(8) as *mut _, acc[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::quantized::fields::{byte_rows, widened_rows};
    use crate::nn::kernels::quantized::{Multiplier, Scaling};

    #[test]
    /// At the level `PETAL_SIMD` selects (the suite runs at each); with zero-point-free int8
    /// weights on AVX-512 VNNI, by the byte product.
    fn products_equal_the_definition() {
        // Many short rows (panels in pairs, alone and partial), and a few long ones whose
        // panels the threads share.
        for (rows, filters, depth) in [
            (37, 11, 45),
            (45, 48, 20),
            (29, 40, 7),
            (1, 70, 2000),
            (3, 70, 2000),
        ] {
            products_equal_the_definition_for(rows, filters, depth);
        }
    }

    /// Sums over every integer of ±16 000 (each row's two inputs weighted 1 and 127), so
    /// every rounding point of outputs within ±300 for multipliers of several right shifts,
    /// requantized by the byte product in int8 and uint8 (on AVX-512 VNNI, in the product's
    /// registers, whose single-precision first try must hand over to fixed point there),
    /// equal the reference; 40 filters take a pair of panels and a partial one.
    #[test]
    fn byte_products_requantize_as_the_reference_at_every_rounding_point() {
        let (filters, depth, x_zero) = (40, 2, 128);
        let rows = 256 * 256 - 3;
        let x: Vec<u8> = (0..rows).flat_map(|r| [r as u8, (r >> 8) as u8]).collect();
        let w: Vec<i8> = (0..filters)
            .flat_map(|f| [1, 127 - (f % 2) as i8])
            .collect();
        let bias: Vec<i32> = (0..filters as i32).map(|f| f * 37 - 700).collect();
        let multipliers: Vec<Multiplier> = (0..filters)
            .map(|f| 2f64.powi(-6 - (f % 6) as i32) * (0.5 + f as f64 / 80.0))
            .map(|r| Multiplier::new(r).unwrap())
            .collect();
        let sum = |r: usize, f: usize| {
            let products =
                (0..depth).map(|k| (x[r * depth + k] as i32 - x_zero) * w[f * depth + k] as i32);
            products.sum::<i32>() + bias[f]
        };
        let weights = QuantizedWeights::new(&w, filters, depth, &[0], Some(&bias));
        let stride = weights.byte_stride().max(weights.stride());
        for (zero_point, min, max) in [
            (-128, -128, 127),
            (100, -128, 127),
            (0, 0, 255),
            (255, 0, 255),
        ] {
            let stage = Requantize {
                scaling: Scaling::fixed(&multipliers),
                zero_point,
                min,
                max,
            };
            let got: Vec<i32> = match min < 0 {
                true => multiply_any::<i8>(&weights, &x, depth, x_zero, stride, &stage),
                false => multiply_any::<u8>(&weights, &x, depth, x_zero, stride, &stage),
            };
            for (i, got) in got.into_iter().enumerate() {
                let (r, f) = (i / filters, i % filters);
                assert_eq!(
                    got,
                    stage.apply(sum(r, f), f),
                    "row {r} filter {f} zero point {zero_point}"
                );
            }
        }
    }

    /// `weights` times the rows of `x` (`depth` values each, zero point `x_zero`), requantized
    /// by `stage`: by the byte product where it applies.
    fn multiply_any<T: Quantized>(
        weights: &QuantizedWeights,
        x: &[u8],
        depth: usize,
        x_zero: i32,
        stride: usize,
        stage: &Requantize,
    ) -> Vec<i32> {
        let rows = x.len() / depth;
        let mut out = vec![T::default(); rows * weights.filters];
        if weights.takes_bytes() {
            let make = |range, fields: &mut [u8]| byte_rows(x, depth, range, 0, stride, fields);
            weights.multiply_bytes(make, rows, x_zero, &mut out, stage);
        } else {
            let make =
                |range, fields: &mut [i16]| widened_rows(x, depth, range, -x_zero, stride, fields);
            weights.multiply(make, rows, &mut out, stage);
        }
        out.into_iter().map(T::get).collect()
    }

    fn products_equal_the_definition_for(rows: usize, filters: usize, depth: usize) {
        let x: Vec<u8> = (0..rows * depth).map(|i| (i * 37 % 256) as u8).collect();
        let w: Vec<i8> = (0..filters * depth)
            .map(|i| (i * 91 % 256) as u8 as i8)
            .collect();
        let bias: Vec<i32> = (0..filters as i32).map(|f| f * 1000 - 3000).collect();
        let stage = Requantize {
            scaling: Scaling::fixed(
                &(0..filters)
                    .map(|f| Multiplier::new(0.03 / depth as f64 * (f + 1) as f64).unwrap())
                    .collect::<Vec<_>>(),
            ),
            zero_point: -5,
            min: -128,
            max: 127,
        };
        let x_zero = 128;
        for w_zero in [3, 0] {
            let mut expected = vec![0i8; rows * filters];
            for r in 0..rows {
                for f in 0..filters {
                    let sum: i32 = (0..depth)
                        .map(|k| {
                            (x[r * depth + k] as i32 - x_zero) * (w[f * depth + k] as i32 - w_zero)
                        })
                        .sum();
                    expected[r * filters + f] = stage.apply(sum + bias[f], f) as i8;
                }
            }
            let weights = QuantizedWeights::new(&w, filters, depth, &[w_zero], Some(&bias));
            let mut out = vec![0i8; rows * filters];
            if weights.takes_bytes() {
                let stride = weights.byte_stride();
                let make =
                    |range, fields: &mut [u8]| byte_rows(&x, depth, range, 0, stride, fields);
                weights.multiply_bytes(make, rows, x_zero, &mut out, &stage);
            } else {
                let stride = weights.stride();
                let make = |range, fields: &mut [i16]| {
                    widened_rows(&x, depth, range, -x_zero, stride, fields)
                };
                weights.multiply(make, rows, &mut out, &stage);
            }
            assert_eq!(
                out, expected,
                "{rows}×{depth}, weights' zero point {w_zero}"
            );
        }
    }
}
