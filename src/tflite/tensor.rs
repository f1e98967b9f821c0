//! Tensors as the interpreter holds them and hands them out: a shape and typed values.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I32,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I32 => "i32",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

impl Data {
    pub fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::I32(_) => DType::I32,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor's values in row-major (NHWC) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Default for Tensor {
    fn default() -> Self {
        Tensor {
            shape: Vec::new(),
            data: Data::F32(Vec::new()),
        }
    }
}

impl Tensor {
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        Tensor {
            shape,
            data: Data::F32(values),
        }
    }

    pub fn i32(shape: Vec<usize>, values: Vec<i32>) -> Self {
        Tensor {
            shape,
            data: Data::I32(values),
        }
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            Data::I32(_) => None,
        }
    }

    pub fn as_i32(&self) -> Option<&[i32]> {
        match &self.data {
            Data::I32(v) => Some(v),
            Data::F32(_) => None,
        }
    }

    pub(crate) fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.data {
            Data::F32(v) => Some(v),
            Data::I32(_) => None,
        }
    }

    /// The float values, for writing: the buffer is reused and resized to `len`.
    pub(crate) fn f32_mut(&mut self, shape: Vec<usize>, len: usize) -> &mut [f32] {
        if !matches!(self.data, Data::F32(_)) {
            self.data = Data::F32(Vec::new());
        }
        self.shape = shape;
        let Data::F32(v) = &mut self.data else {
            unreachable!("set to F32 above")
        };
        v.resize(len, 0.0);
        v
    }

    /// The number of values `shape` calls for, if it does not overflow.
    pub(crate) fn elements(shape: &[usize]) -> Option<usize> {
        shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }
}
