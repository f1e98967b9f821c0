//! The segments around a JPEG's entropy-coded data: frame and scan headers, quantization and
//! Huffman tables, restart interval, and the JFIF and Adobe markers that say which colour space
//! three or four components are in. Checks follow libjpeg's, so the files it refuses are
//! refused here, with its reasons.

use super::huffman::HuffmanTable;
use crate::ImageErrorKind;

pub(super) const SOI: u8 = 0xD8;
pub(super) const EOI: u8 = 0xD9;
pub(super) const SOS: u8 = 0xDA;
pub(super) const DQT: u8 = 0xDB;
pub(super) const DHT: u8 = 0xC4;
pub(super) const DRI: u8 = 0xDD;
pub(super) const APP0: u8 = 0xE0;
pub(super) const APP14: u8 = 0xEE;

/// libjpeg's JPEG_MAX_DIMENSION.
const MAX_DIMENSION: usize = 65500;

pub(super) fn corrupt(message: impl Into<String>) -> ImageErrorKind {
    ImageErrorKind::Corrupt(message.into())
}

pub(super) fn truncated() -> ImageErrorKind {
    corrupt("Premature end of JPEG file")
}

/// What a frame's component declares, and the geometry decoding derives from it.
#[derive(Debug, Clone)]
pub(super) struct Component {
    pub id: u8,
    pub h: usize,
    pub v: usize,
    pub quant_slot: usize,
    /// Samples in this component's plane before upsampling: ceil(image size × factor / max).
    pub width: usize,
    pub height: usize,
    /// Blocks holding `width` × `height` samples: what a scan of this component alone covers.
    pub blocks_wide: usize,
    pub blocks_high: usize,
    /// Blocks stored per row and rows of blocks: the frame's MCUs cover these.
    pub stride_blocks: usize,
    pub rows_blocks: usize,
}

#[derive(Debug, Clone)]
pub(super) struct Frame {
    pub width: usize,
    pub height: usize,
    pub progressive: bool,
    pub components: Vec<Component>,
    pub h_max: usize,
    pub v_max: usize,
    pub mcus_wide: usize,
    pub mcus_high: usize,
}

/// One scan: which components (indices into the frame's), their table slots, and for
/// progressive scans the spectral band and successive-approximation bits.
#[derive(Debug, Clone)]
pub(super) struct Scan {
    pub components: Vec<usize>,
    pub dc_slots: Vec<usize>,
    pub ac_slots: Vec<usize>,
    pub start: usize,
    pub end: usize,
    pub high_bit: u8,
    pub low_bit: u8,
}

/// Reads big-endian fields of one marker segment, never past its end.
pub(super) struct Segment<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Segment<'a> {
    /// The segment whose length field starts at `pos`; returns it and the position after it.
    pub(super) fn at(data: &'a [u8], pos: usize) -> Result<(Self, usize), ImageErrorKind> {
        let length = match data.get(pos..pos + 2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]) as usize,
            None => return Err(truncated()),
        };
        if length < 2 {
            return Err(corrupt(
                "Invalid JPEG file structure: marker segment too short",
            ));
        }
        let bytes = data.get(pos + 2..pos + length).ok_or_else(truncated)?;
        Ok((Segment { bytes, at: 0 }, pos + length))
    }

    pub(super) fn u8(&mut self) -> Result<u8, ImageErrorKind> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| corrupt("Bogus marker length"))?;
        self.at += 1;
        Ok(b)
    }

    pub(super) fn u16(&mut self) -> Result<u16, ImageErrorKind> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], ImageErrorKind> {
        let slice = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or_else(|| corrupt("Bogus marker length"))?;
        self.at += n;
        Ok(slice)
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    pub(super) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..]
    }
}

/// JPEG's zigzag order: the natural (row-major) index of the k-th coded coefficient, with
/// libjpeg's 16 extra entries so a corrupt run past 63 lands on the last coefficient.
pub(super) const NATURAL_ORDER: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63,
];

/// DQT: up to four tables of 8- or 16-bit values, kept in natural order.
pub(super) fn read_quant_tables(
    mut seg: Segment,
    tables: &mut [Option<[u16; 64]>; 4],
) -> Result<(), ImageErrorKind> {
    while seg.remaining() > 0 {
        let spec = seg.u8()?;
        let (precision, slot) = (spec >> 4, (spec & 15) as usize);
        if slot >= 4 {
            return Err(corrupt(format!("Bogus DQT index {slot}")));
        }
        let mut table = [0u16; 64];
        for &natural in &NATURAL_ORDER[..64] {
            table[natural] = if precision == 0 {
                seg.u8()? as u16
            } else {
                seg.u16()?
            };
        }
        tables[slot] = Some(table);
    }
    Ok(())
}

/// DHT: any number of DC and AC tables.
pub(super) fn read_huffman_tables(
    mut seg: Segment,
    dc: &mut [Option<HuffmanTable>; 4],
    ac: &mut [Option<HuffmanTable>; 4],
) -> Result<(), ImageErrorKind> {
    while seg.remaining() > 0 {
        let spec = seg.u8()?;
        let (class, slot) = (spec >> 4, (spec & 15) as usize);
        if slot >= 4 || class > 1 {
            return Err(corrupt(format!("Bogus DHT index {spec}")));
        }
        let counts: [u8; 16] = seg.take(16)?.try_into().expect("16 bytes");
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total > 256 {
            return Err(corrupt("Bogus Huffman table definition"));
        }
        let table = HuffmanTable::new(counts, seg.take(total)?.to_vec());
        if class == 0 {
            dc[slot] = Some(table);
        } else {
            ac[slot] = Some(table);
        }
    }
    Ok(())
}

/// SOFn: the frame header, with the sampling geometry worked out.
pub(super) fn read_frame(mut seg: Segment, progressive: bool) -> Result<Frame, ImageErrorKind> {
    let precision = seg.u8()?;
    let height = seg.u16()? as usize;
    let width = seg.u16()? as usize;
    let count = seg.u8()? as usize;
    if precision != 8 {
        return Err(ImageErrorKind::Unreadable(format!(
            "{precision}-bit JPEG samples are not supported (only 8-bit, as in TensorFlow)"
        )));
    }
    if height == 0 {
        return Err(ImageErrorKind::Unreadable(
            "JPEG with its height in a DNL marker is not supported".into(),
        ));
    }
    if width == 0 || count == 0 {
        return Err(corrupt("Empty JPEG image"));
    }
    if width.max(height) > MAX_DIMENSION {
        return Err(corrupt(format!(
            "Maximum supported image dimension is {MAX_DIMENSION} pixels"
        )));
    }
    let mut components = Vec::with_capacity(count);
    for _ in 0..count {
        let id = seg.u8()?;
        let sampling = seg.u8()?;
        let quant_slot = seg.u8()? as usize;
        let (h, v) = ((sampling >> 4) as usize, (sampling & 15) as usize);
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
            return Err(corrupt("Bogus sampling factors"));
        }
        if quant_slot >= 4 {
            return Err(corrupt(format!(
                "Bogus quantization table index {quant_slot}"
            )));
        }
        components.push(Component {
            id,
            h,
            v,
            quant_slot,
            width: 0,
            height: 0,
            blocks_wide: 0,
            blocks_high: 0,
            stride_blocks: 0,
            rows_blocks: 0,
        });
    }
    if !matches!(count, 1 | 3 | 4) {
        return Err(ImageErrorKind::Unreadable(format!(
            "JPEG with {count} colour components: only gray (1), colour (3) and CMYK (4) decode"
        )));
    }
    let h_max = components.iter().map(|c| c.h).max().unwrap_or(1);
    let v_max = components.iter().map(|c| c.v).max().unwrap_or(1);
    for c in &components {
        if h_max % c.h != 0 || v_max % c.v != 0 {
            return Err(ImageErrorKind::Unreadable(
                "JPEG with fractional sampling ratios is not supported (nor by libjpeg)".into(),
            ));
        }
    }
    let mcus_wide = width.div_ceil(8 * h_max);
    let mcus_high = height.div_ceil(8 * v_max);
    for c in &mut components {
        c.width = (width * c.h).div_ceil(h_max);
        c.height = (height * c.v).div_ceil(v_max);
        c.blocks_wide = c.width.div_ceil(8);
        c.blocks_high = c.height.div_ceil(8);
        c.stride_blocks = mcus_wide * c.h;
        c.rows_blocks = mcus_high * c.v;
    }
    Ok(Frame {
        width,
        height,
        progressive,
        components,
        h_max,
        v_max,
        mcus_wide,
        mcus_high,
    })
}

/// SOS: the scan header, checked against the frame as libjpeg checks it.
pub(super) fn read_scan(mut seg: Segment, frame: &Frame) -> Result<Scan, ImageErrorKind> {
    let count = seg.u8()? as usize;
    if !(1..=4).contains(&count) {
        return Err(corrupt("Bogus SOS component count"));
    }
    let mut scan = Scan {
        components: Vec::with_capacity(count),
        dc_slots: Vec::with_capacity(count),
        ac_slots: Vec::with_capacity(count),
        start: 0,
        end: 0,
        high_bit: 0,
        low_bit: 0,
    };
    for position in 0..count {
        let id = seg.u8()?;
        let tables = seg.u8()?;
        // libjpeg's get_sos: the first frame component with this id whose index is not below
        // the scan position. Duplicate ids (CMYK files whose K reuses C's) resolve so.
        let index = frame
            .components
            .iter()
            .enumerate()
            .take(4)
            .skip(position)
            .find(|(_, c)| c.id == id)
            .map(|(index, _)| index)
            .ok_or_else(|| corrupt(format!("Invalid component ID {id} in SOS")))?;
        if scan.components.contains(&index) {
            return Err(corrupt(format!("Invalid component ID {id} in SOS")));
        }
        let (dc, ac) = ((tables >> 4) as usize, (tables & 15) as usize);
        if dc >= 4 || ac >= 4 {
            return Err(corrupt("Bogus Huffman table index in SOS"));
        }
        scan.components.push(index);
        scan.dc_slots.push(dc);
        scan.ac_slots.push(ac);
    }
    scan.start = seg.u8()? as usize;
    scan.end = seg.u8()? as usize;
    let approximation = seg.u8()?;
    scan.high_bit = approximation >> 4;
    scan.low_bit = approximation & 15;
    let blocks_per_mcu: usize = if count == 1 {
        1
    } else {
        scan.components
            .iter()
            .map(|&i| frame.components[i].h * frame.components[i].v)
            .sum()
    };
    if blocks_per_mcu > 10 {
        return Err(corrupt("Sampling factors too large for interleaved scan"));
    }
    if frame.progressive {
        check_progression(&scan)?;
    }
    Ok(scan)
}

/// libjpeg's JERR_BAD_PROGRESSION checks on a progressive scan's parameters.
fn check_progression(scan: &Scan) -> Result<(), ImageErrorKind> {
    let dc_band = scan.start == 0;
    let bad = if dc_band {
        scan.end != 0
    } else {
        scan.start > scan.end || scan.end >= 64 || scan.components.len() != 1
    } || (scan.high_bit != 0 && scan.low_bit + 1 != scan.high_bit)
        || scan.low_bit > 13;
    if bad {
        return Err(corrupt(format!(
            "Invalid progressive parameters Ss={} Se={} Ah={} Al={}",
            scan.start, scan.end, scan.high_bit, scan.low_bit
        )));
    }
    Ok(())
}

/// APP0 and APP14: whether the file is JFIF, and the Adobe colour transform if any.
pub(super) fn read_app(seg: &Segment, marker: u8, jfif: &mut bool, adobe: &mut Option<u8>) {
    let data = seg.rest();
    if marker == APP0 && data.len() >= 14 && data.starts_with(b"JFIF\0") {
        *jfif = true;
    }
    if marker == APP14 && data.len() >= 12 && data.starts_with(b"Adobe") {
        *adobe = Some(data[11]);
    }
}
