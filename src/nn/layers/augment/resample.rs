//! Resampling an image through an affine map with the semantics of TensorFlow's
//! `ImageProjectiveTransformV3`, which Keras's geometric augmentation layers call: the input
//! point is mapped back inside the image by the fill mode, then read by nearest or bilinear
//! interpolation, taps outside the image reading `fill_value`.

use super::affine::Affine;
use crate::data::resize::Interpolation;
use crate::nn::layers::FillMode;

/// How a geometric augmentation reads between and beyond pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    pub fill_mode: FillMode,
    pub fill_value: f32,
    pub interpolation: Interpolation,
}

impl Sampling {
    /// For maps that land on pixel centres inside the image (flips): a plain copy.
    pub const EXACT: Sampling = Sampling {
        fill_mode: FillMode::Constant,
        fill_value: 0.0,
        interpolation: Interpolation::Nearest,
    };
}

/// Height, width and channels of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl ImageSize {
    pub fn values(&self) -> usize {
        self.height * self.width * self.channels
    }
}

/// Writes into `dst` the image `src` seen through `map` (output pixel → input point).
pub fn affine_transform(
    src: &[f32],
    dst: &mut [f32],
    size: ImageSize,
    map: &Affine,
    sampling: &Sampling,
) {
    let ImageSize {
        height,
        width,
        channels,
    } = size;
    let reader = Reader {
        src,
        size,
        fill: sampling.fill_value,
    };
    let bilinear = sampling.interpolation == Interpolation::Bilinear;
    let (last_x, last_y) = (width as f32 - 1.0, height as f32 - 1.0);
    for (y, row) in dst[..size.values()]
        .chunks_exact_mut(width * channels)
        .enumerate()
    {
        for (x, pixel) in row.chunks_exact_mut(channels).enumerate() {
            let (xf, yf) = map.apply(x as f32, y as f32);
            if bilinear && xf >= 0.0 && yf >= 0.0 && xf < last_x && yf < last_y {
                reader.bilinear_inside(xf, yf, pixel);
                continue;
            }
            let xf = map_coordinate(sampling.fill_mode, xf, width);
            let yf = map_coordinate(sampling.fill_mode, yf, height);
            match (sampling.interpolation, sampling.fill_mode) {
                (Interpolation::Nearest, _) => reader.nearest(xf, yf, pixel),
                (Interpolation::Bilinear, FillMode::Constant) => reader.bilinear(xf, yf, pixel),
                // Mapped into [0, len - 1]: only a tap of weight 0 can fall outside.
                (Interpolation::Bilinear, _) => reader.bilinear_clamped(xf, yf, pixel),
            }
        }
    }
}

/// Brings a coordinate beyond the edges back inside, exactly as TensorFlow's `MapCoordinate`
/// does (including its clamp to [0, len - 1]); `Constant` leaves it outside.
fn map_coordinate(mode: FillMode, coordinate: f32, len: usize) -> f32 {
    let last = len as f32 - 1.0;
    let inside = match mode {
        FillMode::Constant => return coordinate,
        FillMode::Nearest => coordinate,
        _ if len <= 1 => 0.0,
        FillMode::Reflect => reflect(coordinate, len as f32),
        FillMode::Wrap => wrap(coordinate, len as f32),
    };
    inside.clamp(0.0, last)
}

/// `v.trunc()` without a call into libm (baseline x86-64 has no rounding instruction); beyond
/// ±2^63 the coordinate is far outside any image and saturating keeps it there.
fn trunc(v: f32) -> f32 {
    v as i64 as f32
}

/// d c b a | a b c d | d c b a: mirror about -0.5 and len - 0.5, periodic in 2·len.
fn reflect(coordinate: f32, len: f32) -> f32 {
    let period = 2.0 * len;
    if coordinate < 0.0 {
        let c = period * trunc(-coordinate / period) + coordinate;
        if c < -len {
            c + period
        } else {
            -c - 1.0
        }
    } else if coordinate > len - 1.0 {
        let c = coordinate - period * trunc(coordinate / period);
        if c >= len {
            period - c - 1.0
        } else {
            c
        }
    } else {
        coordinate
    }
}

/// a b c d | a b c d, with TensorFlow's own period arithmetic (steps of len over len - 1).
fn wrap(coordinate: f32, len: f32) -> f32 {
    let span = len - 1.0;
    if coordinate < 0.0 {
        coordinate + len * (trunc(-coordinate / span) + 1.0)
    } else if coordinate > span {
        coordinate - len * trunc(coordinate / span)
    } else {
        coordinate
    }
}

struct Reader<'a> {
    src: &'a [f32],
    size: ImageSize,
    fill: f32,
}

impl Reader<'_> {
    /// The pixel at (x, y), or `None` outside the image.
    #[inline]
    fn pixel(&self, x: f32, y: f32) -> Option<&[f32]> {
        let ImageSize {
            height,
            width,
            channels,
        } = self.size;
        let inside = x >= 0.0 && y >= 0.0 && (x as usize) < width && (y as usize) < height;
        inside.then(|| {
            let at = ((y as usize) * width + x as usize) * channels;
            &self.src[at..at + channels]
        })
    }

    fn nearest(&self, x: f32, y: f32, out: &mut [f32]) {
        match self.pixel(x.round(), y.round()) {
            Some(p) => out.copy_from_slice(p),
            None => out.fill(self.fill),
        }
    }

    /// Bilinear at a point whose four taps are all inside the image (0 ≤ x < width - 1, and
    /// likewise y): no fill mode applies, and truncation is the floor.
    #[inline]
    fn bilinear_inside(&self, x: f32, y: f32, out: &mut [f32]) {
        // Through i32: float-to-usize and usize-to-float conversions cost several instructions
        // each, and this runs for every pixel of every augmented image.
        let (x0, y0) = (x as i32 as usize, y as i32 as usize);
        if let Ok(rgb) = <&mut [f32; 3]>::try_from(&mut *out) {
            return self.blend_rgb_inside(x, y, x0, y0, rgb);
        }
        self.blend(x, y, [x0, x0 + 1], [y0, y0 + 1], out);
    }

    /// [`Self::blend`] for the common case of RGB pixels with both columns inside: each row's
    /// two pixels are six consecutive values, read with one bounds check.
    #[inline]
    fn blend_rgb_inside(&self, x: f32, y: f32, x0: usize, y0: usize, out: &mut [f32; 3]) {
        let width = self.size.width;
        let (x0f, y0f) = (x0 as i32 as f32, y0 as i32 as f32);
        let (x1f, y1f) = (x0f + 1.0, y0f + 1.0);
        let i = (y0 * width + x0) * 3;
        let j = i + width * 3;
        let (Ok(top), Ok(bottom)) = (
            <&[f32; 6]>::try_from(&self.src[i..i + 6]),
            <&[f32; 6]>::try_from(&self.src[j..j + 6]),
        ) else {
            unreachable!("six values were sliced")
        };
        for c in 0..3 {
            let upper = (x1f - x) * top[c] + (x - x0f) * top[c + 3];
            let lower = (x1f - x) * bottom[c] + (x - x0f) * bottom[c + 3];
            out[c] = (y1f - y) * upper + (y - y0f) * lower;
        }
    }

    /// Bilinear at a point inside [0, width - 1] × [0, height - 1]: a right or lower tap past
    /// the last pixel has weight 0, so the last pixel stands in for it.
    #[inline]
    fn bilinear_clamped(&self, x: f32, y: f32, out: &mut [f32]) {
        let (x0, y0) = (x as usize, y as usize);
        let right = (x0 + 1).min(self.size.width - 1);
        let below = (y0 + 1).min(self.size.height - 1);
        self.blend(x, y, [x0, right], [y0, below], out);
    }

    /// TensorFlow's bilinear blend of the pixels at columns `xs` and rows `ys` around (x, y),
    /// the left column and top row being the floor of x and y.
    #[inline]
    fn blend(&self, x: f32, y: f32, xs: [usize; 2], ys: [usize; 2], out: &mut [f32]) {
        let ImageSize {
            width, channels, ..
        } = self.size;
        let (x0f, y0f) = (xs[0] as f32, ys[0] as f32);
        let (x1f, y1f) = (x0f + 1.0, y0f + 1.0);
        let at = |row: usize, column: usize| {
            let i = (row * width + column) * channels;
            &self.src[i..i + channels]
        };
        let (top_left, top_right) = (at(ys[0], xs[0]), at(ys[0], xs[1]));
        let (bottom_left, bottom_right) = (at(ys[1], xs[0]), at(ys[1], xs[1]));
        for (c, o) in out.iter_mut().enumerate().take(channels) {
            let upper = (x1f - x) * top_left[c] + (x - x0f) * top_right[c];
            let lower = (x1f - x) * bottom_left[c] + (x - x0f) * bottom_right[c];
            *o = (y1f - y) * upper + (y - y0f) * lower;
        }
    }

    fn bilinear(&self, x: f32, y: f32, out: &mut [f32]) {
        let (x0, y0) = (x.floor(), y.floor());
        let (x1, y1) = (x0 + 1.0, y0 + 1.0);
        let taps = [
            self.pixel(x0, y0),
            self.pixel(x1, y0),
            self.pixel(x0, y1),
            self.pixel(x1, y1),
        ];
        let read = |tap: Option<&[f32]>, c: usize| tap.map_or(self.fill, |p| p[c]);
        // TensorFlow's order of operations: along x on both rows, then along y.
        for (c, o) in out.iter_mut().enumerate() {
            let top = (x1 - x) * read(taps[0], c) + (x - x0) * read(taps[1], c);
            let bottom = (x1 - x) * read(taps[2], c) + (x - x0) * read(taps[3], c);
            *o = (y1 - y) * top + (y - y0) * bottom;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: ImageSize = ImageSize {
        height: 1,
        width: 4,
        channels: 1,
    };

    /// A 1×4 image [a b c d] = [1 2 3 4] read at x = out_x + shift.
    fn shifted(shift: f32, fill_mode: FillMode) -> Vec<f32> {
        let src = [1.0, 2.0, 3.0, 4.0];
        let mut dst = vec![0.0; 4];
        let sampling = Sampling {
            fill_mode,
            fill_value: 9.0,
            interpolation: Interpolation::Nearest,
        };
        let map = Affine([1.0, 0.0, shift, 0.0, 1.0, 0.0]);
        affine_transform(&src, &mut dst, ROW, &map, &sampling);
        dst
    }

    #[test]
    fn fill_modes_at_the_borders() {
        assert_eq!(shifted(-2.0, FillMode::Reflect), [2.0, 1.0, 1.0, 2.0]);
        assert_eq!(shifted(2.0, FillMode::Reflect), [3.0, 4.0, 4.0, 3.0]);
        assert_eq!(shifted(-6.0, FillMode::Reflect), [3.0, 4.0, 4.0, 3.0]);
        assert_eq!(shifted(-2.0, FillMode::Wrap), [3.0, 4.0, 1.0, 2.0]);
        assert_eq!(shifted(2.0, FillMode::Wrap), [3.0, 4.0, 1.0, 2.0]);
        assert_eq!(shifted(-2.0, FillMode::Constant), [9.0, 9.0, 1.0, 2.0]);
        assert_eq!(shifted(3.0, FillMode::Constant), [4.0, 9.0, 9.0, 9.0]);
        assert_eq!(shifted(-2.0, FillMode::Nearest), [1.0, 1.0, 1.0, 2.0]);
        assert_eq!(shifted(2.0, FillMode::Nearest), [3.0, 4.0, 4.0, 4.0]);
    }

    #[test]
    fn bilinear_blends_neighbours_and_fills_outside_taps() {
        let src = [0.0, 10.0, 20.0, 30.0];
        let mut dst = vec![0.0; 4];
        let sampling = Sampling {
            fill_mode: FillMode::Constant,
            fill_value: 100.0,
            interpolation: Interpolation::Bilinear,
        };
        let half_right = Affine([1.0, 0.0, 0.5, 0.0, 1.0, 0.0]);
        affine_transform(&src, &mut dst, ROW, &half_right, &sampling);
        // The last pixel's right tap is outside: half of it is the fill value.
        assert_eq!(dst, [5.0, 15.0, 25.0, 65.0]);
    }

    #[test]
    fn identity_copies() {
        let src: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let size = ImageSize {
            height: 2,
            width: 4,
            channels: 3,
        };
        for interpolation in [Interpolation::Nearest, Interpolation::Bilinear] {
            let mut dst = vec![0.0; 24];
            let sampling = Sampling {
                interpolation,
                ..Sampling::EXACT
            };
            affine_transform(&src, &mut dst, size, &Affine::IDENTITY, &sampling);
            assert_eq!(dst, src);
        }
    }
}
