//! MaxPooling2D that remembers where each maximum came from, so backward is a scatter.

use super::window::Axis;
use super::{Build, Layer, LayerConfig, Mode, Padding, Pair};
use crate::nn::shape::Shape;
use rayon::prelude::*;

pub struct MaxPooling2D {
    name: String,
    channels: usize,
    rows: Axis,
    cols: Axis,
    padding: Padding,
    /// For every output value of the last forward pass, the index of its input within the image.
    argmax: Vec<u32>,
}

impl MaxPooling2D {
    pub(crate) fn from_config(config: &LayerConfig, b: Build) -> Result<Self, String> {
        let LayerConfig::MaxPooling2D {
            pool_size,
            strides,
            padding,
            ..
        } = *config
        else {
            return Err(Build::not_for("MaxPooling2D", config));
        };
        let input = b.image("MaxPooling2D")?;
        let pool = Build::positive("pool_size", pool_size)?;
        let strides = Build::positive("strides", strides.unwrap_or(pool_size))?;
        MaxPooling2D::new(b.name, input, pool, strides, padding).ok_or_else(|| {
            format!(
                "a {pool:?} pool does not fit the {} input with padding \"valid\"",
                b.input
            )
        })
    }

    pub fn new(
        name: String,
        input: (usize, usize, usize),
        pool: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    ) -> Option<Self> {
        let (h, w, channels) = input;
        Some(MaxPooling2D {
            name,
            channels,
            rows: Axis::new(h, pool.0, strides.0, padding)?,
            cols: Axis::new(w, pool.1, strides.1, padding)?,
            padding,
            argmax: Vec::new(),
        })
    }

    fn pool_image(&self, image: &[f32], out: &mut [f32], argmax: &mut [u32]) {
        if self.is_2x2() {
            return self.pool_2x2(image, out, argmax);
        }
        let c = self.channels;
        for oy in 0..self.rows.output {
            for ox in 0..self.cols.output {
                let at = (oy * self.cols.output + ox) * c;
                let (best, best_at) = (&mut out[at..at + c], &mut argmax[at..at + c]);
                best.fill(f32::NEG_INFINITY);
                for ky in 0..self.rows.window {
                    let Some(iy) = self.rows.source(oy, ky) else {
                        continue;
                    };
                    for kx in 0..self.cols.window {
                        let Some(ix) = self.cols.source(ox, kx) else {
                            continue;
                        };
                        let base = (iy * self.cols.input + ix) * c;
                        for ch in 0..c {
                            let v = image[base + ch];
                            if v > best[ch] || best_at[ch] == u32::MAX {
                                best[ch] = v;
                                best_at[ch] = (base + ch) as u32;
                            }
                        }
                    }
                }
            }
        }
    }
}

impl MaxPooling2D {
    /// Offsets of the first channel of the four inputs of 2×2 window (`oy`, `ox`).
    fn window_corners(&self, oy: usize, ox: usize) -> [usize; 4] {
        let c = self.channels;
        let line = self.cols.input * c;
        let (top, left) = (2 * oy * line, 2 * ox * c);
        [
            top + left,
            top + left + c,
            top + line + left,
            top + line + left + c,
        ]
    }

    /// Backward of [`pool_2x2`]: windows do not overlap, so each window's four inputs are cleared
    /// and its winners written while those cache lines are at hand, instead of clearing the whole
    /// (large) gradient first and scattering afterwards.
    fn unpool_2x2(&self, dimage: &mut [f32], dout: &[f32], argmax: &[u32]) {
        let c = self.channels;
        if 2 * self.rows.output < self.rows.input || 2 * self.cols.output < self.cols.input {
            dimage.fill(0.0); // an odd last row or column takes no part in any window
        }
        for oy in 0..self.rows.output {
            for ox in 0..self.cols.output {
                let corners = self.window_corners(oy, ox);
                dimage[corners[0]..corners[0] + 2 * c].fill(0.0);
                dimage[corners[2]..corners[2] + 2 * c].fill(0.0);
                let at = (oy * self.cols.output + ox) * c;
                for (&i, &g) in argmax[at..at + c].iter().zip(&dout[at..at + c]) {
                    dimage[i as usize] = g;
                }
            }
        }
    }

    pub(crate) fn is_2x2(&self) -> bool {
        (
            self.rows.window,
            self.rows.stride,
            self.cols.window,
            self.cols.stride,
            self.padding,
        ) == (2, 2, 2, 2, Padding::Valid)
    }

    /// Keras's default pool (2×2, stride 2, valid): four candidate rows of `c` channels per
    /// output pixel, compared channel-wise so the compiler vectorises the loop.
    fn pool_2x2(&self, image: &[f32], out: &mut [f32], argmax: &mut [u32]) {
        let c = self.channels;
        for oy in 0..self.rows.output {
            for ox in 0..self.cols.output {
                let at = (oy * self.cols.output + ox) * c;
                let corners = self.window_corners(oy, ox);
                let best = &mut out[at..at + c];
                let best_at = &mut argmax[at..at + c];
                best.copy_from_slice(&image[corners[0]..corners[0] + c]);
                for (ch, i) in best_at.iter_mut().enumerate() {
                    *i = (corners[0] + ch) as u32;
                }
                for &corner in &corners[1..] {
                    let candidate = &image[corner..corner + c];
                    for (ch, ((b, i), &v)) in best
                        .iter_mut()
                        .zip(best_at.iter_mut())
                        .zip(candidate)
                        .enumerate()
                    {
                        // Selects, not a branch: on photos which corner wins is unpredictable.
                        let better = v > *b;
                        *b = if better { v } else { *b };
                        *i = if better { (corner + ch) as u32 } else { *i };
                    }
                }
            }
        }
    }
}

impl Layer for MaxPooling2D {
    fn name(&self) -> &str {
        &self.name
    }

    fn config(&self) -> LayerConfig {
        LayerConfig::MaxPooling2D {
            pool_size: Pair::Two([self.rows.window, self.cols.window]),
            strides: Some(Pair::Two([self.rows.stride, self.cols.stride])),
            padding: self.padding,
            name: Some(self.name.clone()),
        }
    }

    fn output_shape(&self) -> Shape {
        Shape::image(self.rows.output, self.cols.output, self.channels)
    }

    fn forward(&mut self, x: &[f32], y: &mut [f32], batch: usize, _mode: Mode) {
        let in_size = self.rows.input * self.cols.input * self.channels;
        let out_size = self.output_shape().size();
        let mut argmax = std::mem::take(&mut self.argmax);
        argmax.clear();
        argmax.resize(batch * out_size, u32::MAX);
        y[..batch * out_size]
            .par_chunks_mut(out_size)
            .zip(x[..batch * in_size].par_chunks(in_size))
            .zip(argmax.par_chunks_mut(out_size))
            .for_each(|((out, image), arg)| self.pool_image(image, out, arg));
        self.argmax = argmax;
    }

    fn backward(
        &mut self,
        _x: &[f32],
        _y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        batch: usize,
    ) {
        let Some(dx) = dx else { return };
        let in_size = self.rows.input * self.cols.input * self.channels;
        let out_size = self.output_shape().size();
        dx[..batch * in_size]
            .par_chunks_mut(in_size)
            .zip(dy[..batch * out_size].par_chunks(out_size))
            .zip(self.argmax.par_chunks(out_size))
            .for_each(|((dimage, dout), arg)| {
                if self.is_2x2() {
                    return self.unpool_2x2(dimage, dout, arg);
                }
                dimage.fill(0.0);
                for (&g, &i) in dout.iter().zip(arg) {
                    dimage[i as usize] += g;
                }
            });
    }
}
