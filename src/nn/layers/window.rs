//! Sliding-window geometry shared by convolution and pooling, with TensorFlow's padding rules.

use super::Padding;

/// Output length and padding before the first window along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    pub input: usize,
    pub output: usize,
    pub window: usize,
    pub stride: usize,
    /// Spacing of the window's taps: 1 for the layers petal trains, more for TensorFlow Lite's
    /// dilated convolutions.
    pub dilation: usize,
    pub pad_before: usize,
}

impl Axis {
    /// `None` when the window does not fit ("valid" padding on too small an input).
    pub fn new(input: usize, window: usize, stride: usize, padding: Padding) -> Option<Self> {
        Self::dilated(input, window, stride, 1, padding)
    }

    /// A window of `window` taps `dilation` apart; `None` also when a size overflows.
    pub fn dilated(
        input: usize,
        window: usize,
        stride: usize,
        dilation: usize,
        padding: Padding,
    ) -> Option<Self> {
        let span = window
            .checked_sub(1)?
            .checked_mul(dilation)?
            .checked_add(1)?;
        let output = match padding {
            Padding::Valid => input.checked_sub(span)? / stride + 1,
            Padding::Same => input.div_ceil(stride),
        };
        let needed = (output
            .checked_sub(1)?
            .checked_mul(stride)?
            .checked_add(span)?)
        .saturating_sub(input);
        let pad_before = match padding {
            Padding::Valid => 0,
            Padding::Same => needed / 2,
        };
        Some(Axis {
            input,
            output,
            window,
            stride,
            dilation,
            pad_before,
        })
    }

    /// The window offsets `k` whose input position for output `o` lies inside the input, and
    /// the input position of the first of them.
    pub fn taps(&self, o: usize) -> (std::ops::Range<usize>, usize) {
        let origin = o * self.stride;
        // The first k with origin + k·dilation ≥ pad_before, and one past the last with
        // origin + k·dilation − pad_before < input.
        let first = self
            .pad_before
            .saturating_sub(origin)
            .div_ceil(self.dilation);
        let end = (self.input + self.pad_before)
            .saturating_sub(origin)
            .div_ceil(self.dilation)
            .min(self.window);
        let first = first.min(end);
        (
            first..end,
            (origin + first * self.dilation).saturating_sub(self.pad_before),
        )
    }

    /// Input position of window offset `k` for output `o`, if inside the input.
    #[inline]
    pub fn source(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.stride + k * self.dilation)
            .checked_sub(self.pad_before)
            .filter(|&i| i < self.input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensorflow_padding_rules() {
        let same = Axis::new(180, 3, 1, Padding::Same).unwrap();
        assert_eq!((same.output, same.pad_before), (180, 1));
        assert_eq!(Axis::new(45, 2, 2, Padding::Valid).unwrap().output, 22);
        let strided = Axis::new(5, 3, 2, Padding::Same).unwrap();
        assert_eq!((strided.output, strided.pad_before), (3, 1));
        assert_eq!(Axis::new(6, 3, 2, Padding::Same).unwrap().pad_before, 0);
        assert!(Axis::new(2, 3, 1, Padding::Valid).is_none());
        assert_eq!(same.source(0, 0), None);
        assert_eq!(same.source(179, 2), None);
        assert_eq!(same.source(5, 2), Some(6));
        let dilated = Axis::dilated(10, 3, 1, 2, Padding::Same).unwrap();
        assert_eq!((dilated.output, dilated.pad_before), (10, 2));
        assert_eq!(dilated.source(3, 2), Some(5));
        assert_eq!(Axis::dilated(4, 3, 1, 2, Padding::Valid), None);
        for axis in [
            same,
            strided,
            dilated,
            Axis::new(45, 2, 2, Padding::Valid).unwrap(),
        ] {
            for o in 0..axis.output {
                let inside: Vec<usize> = (0..axis.window)
                    .filter(|&k| axis.source(o, k).is_some())
                    .collect();
                let (taps, first) = axis.taps(o);
                assert_eq!(taps.clone().collect::<Vec<_>>(), inside);
                if let Some(&k) = inside.first() {
                    assert_eq!(axis.source(o, k), Some(first));
                }
            }
        }
    }
}
