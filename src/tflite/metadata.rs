//! TensorFlow Lite's model metadata (the `TFLITE_METADATA` buffer that TF Lite Model Maker and
//! the metadata writers add, schema `tensorflow_lite_support/metadata/metadata_schema.fbs`): the
//! input's normalization and the name of the output's labels file, which the writers pack into
//! the model as a zip archive. Only those two things are read, by a small flatbuffer reader
//! whose every access is checked, so a damaged buffer just yields nothing.

/// The name of the model metadata entry that holds the buffer.
pub const METADATA_NAME: &str = "TFLITE_METADATA";

/// What an image classifier's metadata says about using it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassifierMetadata {
    /// Per-channel (or one for all) `(x − mean) / std` the input expects of 0‥255 pixels.
    pub normalization: Option<(Vec<f32>, Vec<f32>)>,
    /// The name of the labels file (TENSOR_AXIS_LABELS) for the first output.
    pub labels_file: Option<String>,
}

/// Reads the metadata buffer of a model; fields it lacks or cannot read are `None`.
pub fn read(buffer: &[u8]) -> ClassifierMetadata {
    let mut found = ClassifierMetadata::default();
    let Some(root) = Table::root(buffer) else {
        return found;
    };
    // ModelMetadata.subgraph_metadata (field 3), the first SubGraphMetadata.
    let Some(subgraph) = root.tables(3).and_then(|mut t| t.next()) else {
        return found;
    };
    // SubGraphMetadata.input_tensor_metadata (2) → TensorMetadata.process_units (4) →
    // ProcessUnit.options (type in slot 0, table in 1; NormalizationOptions is member 1).
    if let Some(input) = subgraph.tables(2).and_then(|mut t| t.next()) {
        for unit in input.tables(4).into_iter().flatten() {
            if unit.byte(0) == Some(1) {
                let Some(options) = unit.table(1) else {
                    continue;
                };
                if let (Some(mean), Some(std)) = (options.floats(0), options.floats(1)) {
                    found.normalization = Some((mean, std));
                }
            }
        }
    }
    // SubGraphMetadata.output_tensor_metadata (3) → TensorMetadata.associated_files (6) →
    // AssociatedFile { name (0), type (2) = TENSOR_AXIS_LABELS (2) }.
    if let Some(output) = subgraph.tables(3).and_then(|mut t| t.next()) {
        found.labels_file = output
            .tables(6)
            .into_iter()
            .flatten()
            .find(|file| file.byte(2) == Some(2))
            .and_then(|file| file.string(0))
            .map(str::to_owned);
    }
    found
}

/// A flatbuffer table: its position in the buffer, every read bounds-checked.
#[derive(Clone, Copy)]
struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn u16_at(buf: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        buf.get(pos..pos.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(buf: &[u8], pos: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        buf.get(pos..pos.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The position an offset at `pos` points to (offsets are relative to where they are stored).
fn follow(buf: &[u8], pos: usize) -> Option<usize> {
    pos.checked_add(u32_at(buf, pos)? as usize)
        .filter(|&p| p < buf.len())
}

impl<'a> Table<'a> {
    fn root(buf: &'a [u8]) -> Option<Table<'a>> {
        Some(Table {
            buf,
            pos: follow(buf, 0)?,
        })
    }

    /// Where field `slot` is stored, if the table has it.
    fn field(&self, slot: usize) -> Option<usize> {
        let back = i32::from_le_bytes(self.buf.get(self.pos..self.pos + 4)?.try_into().ok()?);
        let vtable = (self.pos as i64).checked_sub(back as i64)?;
        let vtable = usize::try_from(vtable).ok()?;
        let vtable_len = u16_at(self.buf, vtable)? as usize;
        let entry = 4 + 2 * slot;
        if entry + 2 > vtable_len {
            return None;
        }
        match u16_at(self.buf, vtable + entry)? {
            0 => None,
            offset => self.pos.checked_add(offset as usize),
        }
    }

    fn byte(&self, slot: usize) -> Option<u8> {
        self.buf.get(self.field(slot)?).copied()
    }

    fn table(&self, slot: usize) -> Option<Table<'a>> {
        Some(Table {
            buf: self.buf,
            pos: follow(self.buf, self.field(slot)?)?,
        })
    }

    /// A vector field: the position of its first element and its length.
    fn vector(&self, slot: usize, element: usize) -> Option<(usize, usize)> {
        let at = follow(self.buf, self.field(slot)?)?;
        let len = u32_at(self.buf, at)? as usize;
        let start = at + 4;
        let end = len.checked_mul(element)?.checked_add(start)?;
        (end <= self.buf.len()).then_some((start, len))
    }

    fn tables(&self, slot: usize) -> Option<impl Iterator<Item = Table<'a>>> {
        let (start, len) = self.vector(slot, 4)?;
        let buf = self.buf;
        Some((0..len).filter_map(move |i| {
            Some(Table {
                buf,
                pos: follow(buf, start + 4 * i)?,
            })
        }))
    }

    fn floats(&self, slot: usize) -> Option<Vec<f32>> {
        let (start, len) = self.vector(slot, 4)?;
        (0..len)
            .map(|i| u32_at(self.buf, start + 4 * i).map(f32::from_bits))
            .collect()
    }

    fn string(&self, slot: usize) -> Option<&'a str> {
        let (start, len) = self.vector(slot, 1)?;
        std::str::from_utf8(&self.buf[start..start + len]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_buffers_give_nothing_and_never_panic() {
        assert_eq!(read(&[]), ClassifierMetadata::default());
        assert_eq!(read(&[255; 64]), ClassifierMetadata::default());
        let mut bytes = vec![0u8; 64];
        bytes[0] = 8;
        for i in 0..bytes.len() {
            for v in [1u8, 4, 200, 255] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = read(&b);
            }
        }
    }
}
