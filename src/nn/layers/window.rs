//! Sliding-window geometry shared by convolution and pooling, with TensorFlow's padding rules.

use super::Padding;

/// Output length and padding before the first window along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    pub input: usize,
    pub output: usize,
    pub window: usize,
    pub stride: usize,
    pub pad_before: usize,
}

impl Axis {
    /// `None` when the window does not fit ("valid" padding on too small an input).
    pub fn new(input: usize, window: usize, stride: usize, padding: Padding) -> Option<Self> {
        let output = match padding {
            Padding::Valid => input.checked_sub(window)? / stride + 1,
            Padding::Same => input.div_ceil(stride),
        };
        let needed = (output.checked_sub(1)? * stride + window).saturating_sub(input);
        let pad_before = match padding {
            Padding::Valid => 0,
            Padding::Same => needed / 2,
        };
        Some(Axis {
            input,
            output,
            window,
            stride,
            pad_before,
        })
    }

    /// Input position of window offset `k` for output `o`, if inside the input.
    #[inline]
    pub fn source(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.stride + k)
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
    }
}
