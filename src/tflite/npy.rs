//! NumPy's `.npy` files as tensors, so `petal tflite run` takes and gives what
//! `numpy.save`/`numpy.load` do: little-endian, C order, any of the interpreter's types.

use super::tensor::{DType, Data, Tensor};
use half::f16;

const MAGIC: &[u8] = b"\x93NUMPY";
/// Headers longer than this are not NumPy's (it writes under 100 bytes for any real shape).
const MAX_HEADER: usize = 1 << 16;

fn descr(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::Bool => "|b1",
    }
}

fn dtype_of(descr: &str) -> Option<DType> {
    Some(match descr {
        "<f4" => DType::F32,
        "<f2" => DType::F16,
        "|i1" | "<i1" | "i1" => DType::I8,
        "|u1" | "<u1" | "u1" => DType::U8,
        "<i2" => DType::I16,
        "<i4" => DType::I32,
        "<i8" => DType::I64,
        "|b1" => DType::Bool,
        _ => return None,
    })
}

/// The bytes of an `.npy` file (format version 1.0) holding `tensor`.
pub fn to_bytes(tensor: &Tensor) -> Vec<u8> {
    let shape = match tensor.shape[..] {
        [d] => format!("({d},)"),
        ref dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        descr(tensor.dtype())
    );
    // Magic, version, length and header end on a multiple of 64 bytes, with a newline.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + header.len() + tensor.data.len() * 8);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    match &tensor.data {
        Data::F32(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        Data::F16(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        Data::I8(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        Data::U8(v) => bytes.extend_from_slice(v),
        Data::I16(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        Data::I32(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        Data::I64(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        Data::Bool(v) => bytes.extend(v.iter().map(|&b| u8::from(b))),
    }
    bytes
}

/// The tensor in an `.npy` file; the error says what is wrong with it.
pub fn from_bytes(bytes: &[u8]) -> Result<Tensor, String> {
    if !bytes.starts_with(MAGIC) || bytes.len() < 10 {
        return Err("not a NumPy .npy file (no \\x93NUMPY magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!(".npy format version {v} is not one NumPy writes")),
    };
    if header_len > MAX_HEADER || bytes.len() < start + header_len {
        return Err("the .npy header is truncated or too long".into());
    }
    let header = std::str::from_utf8(&bytes[start..start + header_len])
        .map_err(|_| "the .npy header is not text")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or_else(|| format!("the .npy header has no '{key}'"))?;
        let rest = header[at + key.len() + 2..].trim_start();
        Ok(rest.strip_prefix(':').unwrap_or(rest).trim_start())
    };
    let descr_text = field("descr")?;
    let descr_text = descr_text
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("the .npy header's descr is not a string")?;
    let dtype = dtype_of(descr_text).ok_or_else(|| {
        format!(
            "the .npy type {descr_text} is not one petal reads (little-endian float32, float16, \
             int8, uint8, int16, int32, int64, bool)"
        )
    })?;
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-ordered .npy arrays are not supported (save with C order)".into());
    }
    let shape_text = field("shape")?;
    let shape_text = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("the .npy header's shape is not a tuple")?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("the .npy shape ({shape_text}) is not a list of sizes"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let body = &bytes[start + header_len..];
    let needed = Tensor::elements(&shape)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or("the .npy shape is too large")?;
    if body.len() != needed {
        return Err(format!(
            "the .npy data holds {} bytes, but shape {shape:?} of {dtype} needs {needed}",
            body.len()
        ));
    }
    let data = match dtype {
        DType::F16 => Data::F16(
            body.chunks_exact(2)
                .map(|w| f16::from_le_bytes([w[0], w[1]]))
                .collect(),
        ),
        other => Data::from_le_bytes(other, body),
    };
    Ok(Tensor::new(shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type_and_refuses_damage() {
        for tensor in [
            Tensor::f32(vec![2, 3], vec![1.5, -2.0, 0.0, 3.25, 4.0, 5.0]),
            Tensor::new(vec![3], Data::I8(vec![-128, 0, 127])),
            Tensor::new(vec![], Data::I64(vec![1 << 40])),
            Tensor::new(vec![2, 1], Data::Bool(vec![true, false])),
        ] {
            let bytes = to_bytes(&tensor);
            assert_eq!((10 + bytes[8] as usize) % 64, 0);
            assert_eq!(from_bytes(&bytes).unwrap(), tensor);
            let e = from_bytes(&bytes[..bytes.len() - 1]).unwrap_err();
            assert!(e.contains("needs"), "{e}");
        }
        assert!(from_bytes(b"PK\x03\x04")
            .unwrap_err()
            .contains("not a NumPy"));
    }
}
