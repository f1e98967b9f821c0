//! The map from an output pixel to the input point it samples, in the pixel-index coordinates of
//! TensorFlow's `ImageProjectiveTransformV3` (pixel (x, y) at integer x, y).

/// `x_in = a[0]·x + a[1]·y + a[2]`, `y_in = a[3]·x + a[4]·y + a[5]`: Keras's first six
/// transform entries (petal's augmentations never draw the projective two).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [f32; 6]);

impl Affine {
    pub const IDENTITY: Affine = Affine([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);

    /// The point of the input that output pixel (x, y) samples, rounded as TensorFlow rounds.
    #[inline]
    pub fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        let a = &self.0;
        (a[0] * x + a[1] * y + a[2], a[3] * x + a[4] * y + a[5])
    }

    /// `p ↦ self(inner(p))`. For layers A then B, an output pixel of B samples B's input at
    /// B's map, which is A's output, which samples A's input at A's map: the pair's map is
    /// `a.after(&b)`.
    pub fn after(&self, inner: &Affine) -> Affine {
        let [a0, a1, a2, b0, b1, b2] = self.0.map(f64::from);
        let [c0, c1, c2, d0, d1, d2] = inner.0.map(f64::from);
        Affine(
            [
                a0 * c0 + a1 * d0,
                a0 * c1 + a1 * d1,
                a0 * c2 + a1 * d2 + a2,
                b0 * c0 + b1 * d0,
                b0 * c1 + b1 * d1,
                b0 * c2 + b1 * d2 + b2,
            ]
            .map(|v| v as f32),
        )
    }

    pub fn is_identity(&self) -> bool {
        *self == Affine::IDENTITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composition_applies_the_inner_map_first() {
        let shift = Affine([1.0, 0.0, 3.0, 0.0, 1.0, -2.0]);
        let swap = Affine([0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
        let both = swap.after(&shift);
        let (x, y) = shift.apply(5.0, 7.0);
        assert_eq!(both.apply(5.0, 7.0), swap.apply(x, y));
        assert_eq!(both.apply(5.0, 7.0), (5.0, 8.0));
        assert!(Affine::IDENTITY.after(&Affine::IDENTITY).is_identity());
    }
}
