//! Tensors as the interpreter holds them and hands them out: a shape, typed values, and the
//! quantization that maps stored integers to real numbers.

use half::f16;

/// The element types petal's interpreter holds, by TensorFlow Lite's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    I8,
    U8,
    I16,
    I32,
    I64,
    Bool,
}

impl DType {
    /// TensorFlow Lite's spelling: FLOAT32, INT8, …
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "FLOAT32",
            DType::F16 => "FLOAT16",
            DType::I8 => "INT8",
            DType::U8 => "UINT8",
            DType::I16 => "INT16",
            DType::I32 => "INT32",
            DType::I64 => "INT64",
            DType::Bool => "BOOL",
        }
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::I16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
        }
    }

    /// `len` zeros of this type.
    pub fn zeros(self, len: usize) -> Data {
        let mut data = self.empty();
        data.resize(len);
        data
    }

    /// An empty buffer of this type.
    pub fn empty(self) -> Data {
        match self {
            DType::F32 => Data::F32(Vec::new()),
            DType::F16 => Data::F16(Vec::new()),
            DType::I8 => Data::I8(Vec::new()),
            DType::U8 => Data::U8(Vec::new()),
            DType::I16 => Data::I16(Vec::new()),
            DType::I32 => Data::I32(Vec::new()),
            DType::I64 => Data::I64(Vec::new()),
            DType::Bool => Data::Bool(Vec::new()),
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// real = scale × (stored − zero point): one scale for the tensor, or one per slice along
/// `axis` (per-channel weights).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantization {
    pub scales: Vec<f32>,
    pub zero_points: Vec<i64>,
    pub axis: usize,
}

/// Applies `$body` to the vector inside any [`Data`] variant, bound as `$v`.
macro_rules! with_vec {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            Data::F32($v) => $body,
            Data::F16($v) => $body,
            Data::I8($v) => $body,
            Data::U8($v) => $body,
            Data::I16($v) => $body,
            Data::I32($v) => $body,
            Data::I64($v) => $body,
            Data::Bool($v) => $body,
        }
    };
}

#[derive(Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F16(Vec<f16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

impl Clone for Data {
    fn clone(&self) -> Self {
        match self {
            Data::F32(v) => Data::F32(v.clone()),
            Data::F16(v) => Data::F16(v.clone()),
            Data::I8(v) => Data::I8(v.clone()),
            Data::U8(v) => Data::U8(v.clone()),
            Data::I16(v) => Data::I16(v.clone()),
            Data::I32(v) => Data::I32(v.clone()),
            Data::I64(v) => Data::I64(v.clone()),
            Data::Bool(v) => Data::Bool(v.clone()),
        }
    }

    /// Into the same vector when the types agree: an interpreter's input is set every run,
    /// and a new allocation that large costs page faults each time.
    fn clone_from(&mut self, source: &Self) {
        match (self, source) {
            (Data::F32(a), Data::F32(b)) => copy_in_parts(a, b),
            (Data::F16(a), Data::F16(b)) => copy_in_parts(a, b),
            (Data::I8(a), Data::I8(b)) => copy_in_parts(a, b),
            (Data::U8(a), Data::U8(b)) => copy_in_parts(a, b),
            (Data::I16(a), Data::I16(b)) => copy_in_parts(a, b),
            (Data::I32(a), Data::I32(b)) => copy_in_parts(a, b),
            (Data::I64(a), Data::I64(b)) => copy_in_parts(a, b),
            (Data::Bool(a), Data::Bool(b)) => copy_in_parts(a, b),
            (this, source) => *this = source.clone(),
        }
    }
}

/// `to.clone_from(from)`, a large one split over the threads: each copies the part the first
/// operator then reads on it, from its own cache (a 224×224 RGB image, 600 KB, took 0.02 ms
/// on one thread, and the other then read its half from that thread's cache).
fn copy_in_parts<T: Copy + Send + Sync>(to: &mut Vec<T>, from: &[T]) {
    if to.len() == from.len() && std::mem::size_of_val(from) >= COPIED_IN_PARTS_BYTES {
        let part = from.len().div_ceil(crate::nn::thread_pool::threads());
        crate::nn::thread_pool::for_each_chunk(to, part, |i, to| {
            to.copy_from_slice(&from[i * part..i * part + to.len()])
        });
    } else {
        to.clear();
        to.extend_from_slice(from);
    }
}

/// Bytes from which [`copy_in_parts`] splits a copy.
const COPIED_IN_PARTS_BYTES: usize = 1 << 17;

impl Data {
    pub fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F16(_) => DType::F16,
            Data::I8(_) => DType::I8,
            Data::U8(_) => DType::U8,
            Data::I16(_) => DType::I16,
            Data::I32(_) => DType::I32,
            Data::I64(_) => DType::I64,
            Data::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        with_vec!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the length to `len`, keeping the allocation (new values are zero).
    pub(crate) fn resize(&mut self, len: usize) {
        with_vec!(self, v => v.resize(len, Default::default()))
    }

    /// Reads little-endian values of `dtype` from `bytes`, whose length the caller checked.
    pub(crate) fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Data {
        fn words<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            bytes
                .chunks_exact(N)
                .map(|w| f(w.try_into().expect("chunks of N")))
                .collect()
        }
        match dtype {
            DType::F32 => Data::F32(words(bytes, f32::from_le_bytes)),
            DType::F16 => Data::F16(words(bytes, f16::from_le_bytes)),
            DType::I8 => Data::I8(words(bytes, i8::from_le_bytes)),
            DType::U8 => Data::U8(bytes.to_vec()),
            DType::I16 => Data::I16(words(bytes, i16::from_le_bytes)),
            DType::I32 => Data::I32(words(bytes, i32::from_le_bytes)),
            DType::I64 => Data::I64(words(bytes, i64::from_le_bytes)),
            DType::Bool => Data::Bool(bytes.iter().map(|&b| b != 0).collect()),
        }
    }
}

/// `scale × (q − zero point)` with the scale and zero point of each value's slice along the
/// quantized axis (one pair for all when per-tensor).
fn dequantized<T: Copy + Into<i64>>(
    q: &[T],
    params: &Quantization,
    shape: &[usize],
) -> Option<Vec<f32>> {
    if params.scales.is_empty() || params.zero_points.len() != params.scales.len() {
        return None;
    }
    let inner: usize = shape
        .get(params.axis + 1..)
        .map_or(1, |s| s.iter().product());
    let mut y = vec![0.0; q.len()];
    dequantize_into(q, params, inner, &mut y);
    Some(y)
}

/// [`dequantized`] into `y`, with `inner` values per step along the quantized axis.
pub(crate) fn dequantize_into<T: Copy + Into<i64>>(
    q: &[T],
    params: &Quantization,
    inner: usize,
    y: &mut [f32],
) {
    let channels = params.scales.len().max(1);
    for (i, (y, &v)) in y.iter_mut().zip(q).enumerate() {
        let c = (i / inner.max(1)) % channels;
        *y = params.scales[c] * (v.into() - params.zero_points[c]) as f32;
    }
}

/// A tensor's values in row-major (NHWC) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
    /// How the stored integers map to real numbers, for quantized tensors.
    pub quantization: Option<Quantization>,
}

impl Default for Tensor {
    fn default() -> Self {
        Tensor {
            shape: Vec::new(),
            data: Data::F32(Vec::new()),
            quantization: None,
        }
    }
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Data) -> Self {
        Tensor {
            shape,
            data,
            quantization: None,
        }
    }

    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        Tensor::new(shape, Data::F32(values))
    }

    pub fn i32(shape: Vec<usize>, values: Vec<i32>) -> Self {
        Tensor::new(shape, Data::I32(values))
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i32(&self) -> Option<&[i32]> {
        match &self.data {
            Data::I32(v) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The real numbers a tensor stands for: FLOAT32 values as they are, FLOAT16 ones widened,
    /// and quantized ones as `scale × (stored − zero point)` of their channel. `None` for
    /// integers without quantization and for other types.
    pub fn to_real(&self) -> Option<Vec<f32>> {
        let q = self.quantization.as_ref();
        match &self.data {
            Data::F32(v) => Some(v.clone()),
            Data::F16(v) => Some(v.iter().map(|v| v.to_f32()).collect()),
            Data::I8(v) => dequantized(v, q?, &self.shape),
            Data::U8(v) => dequantized(v, q?, &self.shape),
            Data::I16(v) => dequantized(v, q?, &self.shape),
            _ => None,
        }
    }

    /// Real numbers stored as an input of `dtype` with `quantization` takes them: FLOAT32 as they
    /// are; INT8 and UINT8 as `round(x / scale) + zero point` (half away from zero, clamped to
    /// the type), as TensorFlow Lite's QUANTIZE stores them; UINT8 without quantization as pixel
    /// values. `None` for other types and per-channel quantization.
    pub fn from_real(
        shape: Vec<usize>,
        values: &[f32],
        dtype: DType,
        quantization: Option<&Quantization>,
    ) -> Option<Tensor> {
        let (scale, zero_point) = match quantization {
            Some(q) if q.scales.len() == 1 => (q.scales[0], q.zero_points[0] as f32),
            Some(_) => return None,
            None => (1.0, 0.0),
        };
        let stored = |lo: f32, hi: f32| {
            values
                .iter()
                .map(move |v| ((v / scale).round() + zero_point).clamp(lo, hi))
        };
        let data = match (dtype, quantization) {
            (DType::F32, _) => Data::F32(values.to_vec()),
            (DType::U8, _) => Data::U8(stored(0.0, 255.0).map(|v| v as u8).collect()),
            (DType::I8, Some(_)) => Data::I8(stored(-128.0, 127.0).map(|v| v as i8).collect()),
            _ => return None,
        };
        Some(Tensor {
            shape,
            data,
            quantization: quantization.cloned(),
        })
    }

    /// The number of values `shape` calls for, if it does not overflow.
    pub fn elements(shape: &[usize]) -> Option<usize> {
        shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input set again, large (copied in parts) or small, of the same length or not, holds
    /// exactly the new values.
    #[test]
    fn data_cloned_from_holds_the_source() {
        for (old, new) in [(200_001, 200_001), (100, 100), (5, 300_000), (300_000, 7)] {
            let mut data = Data::F32(vec![-1.0; old]);
            let source = Data::F32((0..new).map(|i| i as f32).collect());
            data.clone_from(&source);
            assert!(matches!((&data, &source), (Data::F32(a), Data::F32(b)) if a == b));
            let mut bytes = Data::U8(vec![9; new]);
            let source = Data::U8((0..new).map(|i| (i % 251) as u8).collect());
            bytes.clone_from(&source);
            assert!(matches!((&bytes, &source), (Data::U8(a), Data::U8(b)) if a == b));
        }
    }
}
