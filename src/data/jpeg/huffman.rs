//! Huffman tables and the bit reader of a JPEG scan's entropy-coded data, with libjpeg's
//! conduct on bad data: a marker met inside the data ends it and zero bits follow (the decoder
//! then fills the rest of the segment with empty blocks), and a code no table holds decodes as
//! symbol 0. Only data that stops without a marker, the sign of a cut file, is an error.

use crate::ImageErrorKind;

/// Codes up to this many bits resolve with one table lookup; longer ones walk the code lengths.
const LOOKUP_BITS: u32 = 11;

/// A table as a DHT segment defines it (code counts per length, symbols). What decoding needs
/// of it is built, and checked, when a scan first uses it, as libjpeg does: a file of nothing
/// but table definitions costs no more than reading them.
pub(super) struct HuffmanTable {
    counts: [u8; 16],
    symbols: Vec<u8>,
    decoding: std::cell::OnceCell<Result<Decoding, ImageErrorKind>>,
}

impl HuffmanTable {
    pub(super) fn new(counts: [u8; 16], symbols: Vec<u8>) -> Self {
        HuffmanTable {
            counts,
            symbols,
            decoding: std::cell::OnceCell::new(),
        }
    }

    /// The lookup tables, built on first use; an error for a table libjpeg refuses.
    pub(super) fn decoding(&self) -> Result<&Decoding, ImageErrorKind> {
        self.decoding
            .get_or_init(|| Decoding::new(&self.counts, &self.symbols))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// A table's lookups for decoding.
pub(super) struct Decoding {
    /// Indexed by the next `LOOKUP_BITS` bits: code length in the high byte, symbol in the low;
    /// 0 where the code is longer.
    lookup: Vec<u16>,
    /// For each length, the largest code of that length (-1 if none), as libjpeg's `maxcode`.
    max_code: [i32; 18],
    /// For each length, what to add to a code to get its symbol's index in `symbols`.
    value_offset: [i32; 17],
    symbols: Vec<u8>,
    /// For AC tables: where the code and the value's bits together fit in `LOOKUP_BITS`, the
    /// decoded coefficient at once — value in the high 16 bits, run in bits 8..12, bits used
    /// in the low byte (0: take the slow path).
    fast_ac: Vec<i32>,
}

impl Decoding {
    /// Builds a table from a DHT's 16 code counts and its symbols, refusing the tables libjpeg
    /// refuses (more codes than a length can hold, or all-ones codes).
    pub(super) fn new(counts: &[u8; 16], symbols: &[u8]) -> Result<Self, ImageErrorKind> {
        let bad = || ImageErrorKind::Corrupt("bogus Huffman table definition".into());
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total > 256 || total != symbols.len() {
            return Err(bad());
        }
        let mut lookup = vec![0u16; 1 << LOOKUP_BITS];
        let mut max_code = [-1i32; 18];
        let mut value_offset = [0i32; 17];
        let (mut code, mut index) = (0i32, 0usize);
        for length in 1..=16u32 {
            let count = counts[length as usize - 1] as usize;
            value_offset[length as usize] = index as i32 - code;
            for _ in 0..count {
                // No code may be all ones: every code of a length must stay below 2^length - 1.
                if code >= (1 << length) - 1 {
                    return Err(bad());
                }
                if length <= LOOKUP_BITS {
                    let shift = LOOKUP_BITS - length;
                    let first = (code as usize) << shift;
                    let entry = ((length as u16) << 8) | symbols[index] as u16;
                    lookup[first..first + (1 << shift)].fill(entry);
                }
                code += 1;
                index += 1;
            }
            if count > 0 {
                max_code[length as usize] = code - 1;
            }
            code <<= 1;
        }
        max_code[17] = i32::MAX;
        let fast_ac = fast_ac_entries(&lookup);
        Ok(Decoding {
            lookup,
            max_code,
            value_offset,
            symbols: symbols.to_vec(),
            fast_ac,
        })
    }

    /// DC tables code bit counts, which libjpeg limits to 15.
    pub(super) fn fits_dc(&self) -> bool {
        self.symbols.iter().all(|&s| s <= 15)
    }
}

fn fast_ac_entries(lookup: &[u16]) -> Vec<i32> {
    (0..lookup.len())
        .map(|bits| {
            let entry = lookup[bits];
            let (length, symbol) = ((entry >> 8) as u32, entry as u8);
            let (run, size) = ((symbol >> 4) as i32, (symbol & 15) as u32);
            if entry == 0 || size == 0 || length + size > LOOKUP_BITS {
                return 0;
            }
            let raw = ((bits as u32) >> (LOOKUP_BITS - length - size)) & ((1 << size) - 1);
            let value = extend(raw as i32, size);
            (value << 16) | (run << 8) | (length + size) as i32
        })
        .collect()
}

/// JPEG's signed value of `raw`, coded in `size` bits (HUFF_EXTEND).
#[inline(always)]
fn extend(raw: i32, size: u32) -> i32 {
    if raw < 1 << (size - 1) {
        raw - (1 << size) + 1
    } else {
        raw
    }
}

/// The tables of JPEG's Annex K, which libjpeg-turbo puts in any of slots 0 and 1 still empty
/// when decoding starts: Motion-JPEG frames leave them out.
pub(super) fn standard_table(ac: bool, slot: usize) -> HuffmanTable {
    const DC_LUMA: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    const DC_CHROMA: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    const DC_SYMBOLS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const AC_LUMA: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
    const AC_CHROMA: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    const AC_LUMA_SYMBOLS: [u8; 162] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
        0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52,
        0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25,
        0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45,
        0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64,
        0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
        0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3,
        0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8,
        0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
    const AC_CHROMA_SYMBOLS: [u8; 162] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
        0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33,
        0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18,
        0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44,
        0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
        0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
        0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca,
        0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7,
        0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
    match (ac, slot) {
        (false, 0) => HuffmanTable::new(DC_LUMA, DC_SYMBOLS.to_vec()),
        (false, _) => HuffmanTable::new(DC_CHROMA, DC_SYMBOLS.to_vec()),
        (true, 0) => HuffmanTable::new(AC_LUMA, AC_LUMA_SYMBOLS.to_vec()),
        (true, _) => HuffmanTable::new(AC_CHROMA, AC_CHROMA_SYMBOLS.to_vec()),
    }
}

/// Reads a scan's entropy-coded bits, most significant first, undoing the 0xFF 0x00 stuffing.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    /// The next byte to read; left at a marker's 0xFF once one is met.
    pub(super) pos: usize,
    bits: u64,
    count: u32,
    /// How many of the last `count` bits are zeros fed past the end of the data.
    fed_zeros: u32,
    /// A marker ended the data: zero bits follow, as libjpeg feeds them.
    pub(super) hit_marker: bool,
    /// The file ended inside the data, with no marker: it was cut short.
    ran_out: bool,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            bits: 0,
            count: 0,
            fed_zeros: 0,
            hit_marker: false,
            ran_out: false,
        }
    }

    /// Tops the buffer up to at least 57 bits, zeros past the end of the data.
    #[inline(always)]
    fn refill(&mut self) {
        // Eight bytes at once when none of them is 0xFF (no stuffing, no marker).
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let word = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
            let inverted = !word;
            let has_ff =
                inverted.wrapping_sub(0x0101_0101_0101_0101) & word & 0x8080_8080_8080_8080;
            if has_ff == 0 && !self.hit_marker {
                let taken = (64 - self.count) / 8;
                let new_count = self.count + 8 * taken;
                let keep = if new_count == 64 {
                    !0
                } else {
                    !((1u64 << (64 - new_count)) - 1)
                };
                self.bits |= (word >> self.count) & keep;
                self.pos += taken as usize;
                self.count = new_count;
                return;
            }
        }
        self.refill_bytewise();
    }

    /// Byte by byte: stuffed bytes, a marker, or the end of the data are near.
    #[inline(never)]
    fn refill_bytewise(&mut self) {
        while self.count <= 56 {
            let byte = self.next_byte();
            self.bits |= (byte as u64) << (56 - self.count);
            self.count += 8;
        }
    }

    #[inline]
    fn next_byte(&mut self) -> u8 {
        if self.hit_marker || self.ran_out {
            self.fed_zeros += 8;
            return 0;
        }
        let Some(&byte) = self.data.get(self.pos) else {
            self.ran_out = true;
            self.fed_zeros += 8;
            return 0;
        };
        if byte != 0xFF {
            self.pos += 1;
            return byte;
        }
        // 0xFF 0x00 is a stuffed 0xFF; any number of 0xFF fill bytes may precede a marker.
        let mut next = self.pos + 1;
        while self.data.get(next) == Some(&0xFF) {
            next += 1;
        }
        match self.data.get(next) {
            Some(0) => {
                self.pos = next + 1;
                0xFF
            }
            Some(_) => {
                self.pos = next - 1;
                self.hit_marker = true;
                self.fed_zeros += 8;
                0
            }
            None => {
                self.ran_out = true;
                self.fed_zeros += 8;
                0
            }
        }
    }

    #[inline]
    pub(super) fn ensure(&mut self, n: u32) {
        if self.count < n {
            self.refill();
        }
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        self.bits <<= n;
        self.count -= n;
    }

    /// The next `n` bits (at most 16) as an unsigned number.
    #[inline]
    pub(super) fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        self.ensure(n);
        let value = (self.bits >> (64 - n)) as u32;
        self.consume(n);
        value
    }

    #[inline]
    pub(super) fn bit(&mut self) -> bool {
        self.bits(1) != 0
    }

    /// The next `n` bits as the signed value JPEG codes with a bit count (HUFF_EXTEND).
    #[inline]
    pub(super) fn signed(&mut self, n: u32) -> i32 {
        if n == 0 {
            return 0;
        }
        let raw = self.bits(n) as i32;
        extend(raw, n)
    }

    /// The next AC coefficient as (run of zeros, value) when `table`'s shortcut covers it.
    /// The caller has ensured 16 bits.
    #[inline(always)]
    pub(super) fn fast_ac(&mut self, table: &Decoding) -> Option<(usize, i16)> {
        let entry = table.fast_ac[(self.bits >> (64 - LOOKUP_BITS)) as usize];
        if entry == 0 {
            return None;
        }
        self.consume((entry & 0xFF) as u32);
        Some((((entry >> 8) & 15) as usize, (entry >> 16) as i16))
    }

    /// The next symbol in `table`; 0 for a code the table lacks, as libjpeg decodes it.
    #[inline(always)]
    pub(super) fn symbol(&mut self, table: &Decoding) -> u8 {
        self.ensure(17);
        let entry = table.lookup[(self.bits >> (64 - LOOKUP_BITS)) as usize];
        if entry != 0 {
            self.consume((entry >> 8) as u32);
            return entry as u8;
        }
        self.long_symbol(table)
    }

    /// A code longer than the lookup covers, found by its length (libjpeg's jpeg_huff_decode).
    #[inline(never)]
    fn long_symbol(&mut self, table: &Decoding) -> u8 {
        for length in LOOKUP_BITS + 1..=16 {
            let code = (self.bits >> (64 - length)) as i32;
            if code <= table.max_code[length as usize] {
                self.consume(length);
                let index = code + table.value_offset[length as usize];
                return table.symbols.get(index as usize).copied().unwrap_or(0);
            }
        }
        // No code matched: libjpeg reads a 17th bit before giving up with symbol 0.
        self.consume(17);
        0
    }

    pub(super) fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Whether the data stopped without a marker (a file cut short). libjpeg reads ahead too,
    /// and stops there whether or not the bits were needed.
    pub(super) fn truncated(&self) -> bool {
        self.ran_out
    }

    /// Whether decoding used bits past a marker: the segment's data was too short, and libjpeg
    /// leaves its remaining blocks empty.
    pub(super) fn overran_marker(&self) -> bool {
        self.hit_marker && self.count < self.fed_zeros
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffed_bytes_are_data_and_markers_end_it() {
        let data = [0xAB, 0xFF, 0x00, 0x12, 0xFF, 0xFF, 0xD9];
        let mut r = BitReader::new(&data, 0);
        assert_eq!(r.bits(8), 0xAB);
        assert_eq!(r.bits(8), 0xFF);
        assert_eq!(r.bits(8), 0x12);
        assert_eq!(r.bits(16), 0);
        assert!(r.hit_marker && !r.truncated());
        assert_eq!(data[r.pos..], [0xFF, 0xD9]);
    }

    #[test]
    fn data_without_a_closing_marker_is_truncated() {
        let mut r = BitReader::new(&[0x12, 0x34], 0);
        r.bits(16);
        assert!(r.truncated());
    }

    #[test]
    fn symbols_decode_across_both_lookup_paths() {
        // Lengths 2 (two codes), 10 (one) and 12 (one): the long ones miss the lookup table.
        let mut counts = [0u8; 16];
        counts[1] = 2;
        counts[9] = 1;
        counts[11] = 1;
        let table = Decoding::new(&counts, &[7, 8, 9, 10]).unwrap();
        // Codes: 00 → 7, 01 → 8, 1000000000 → 9, 100000000100 → 10.
        let bits = "01".to_owned() + "00" + "1000000000" + "100000000100" + "1111";
        let bytes: Vec<u8> = bits
            .as_bytes()
            .chunks(8)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap())
            .chain([0xFF, 0xD9])
            .collect();
        let mut r = BitReader::new(&bytes, 0);
        let decoded: Vec<u8> = (0..4).map(|_| r.symbol(&table)).collect();
        assert_eq!(decoded, [8, 7, 9, 10]);
    }

    #[test]
    fn tables_with_too_many_codes_are_refused() {
        let mut counts = [0u8; 16];
        counts[0] = 3; // three 1-bit codes cannot exist
        assert!(Decoding::new(&counts, &[1, 2, 3]).is_err());
        counts[0] = 2; // the all-ones code 1 is not allowed either
        assert!(Decoding::new(&counts, &[1, 2]).is_err());
        counts[0] = 1;
        assert!(Decoding::new(&counts, &[1]).is_ok());
        for (ac, slot) in [(false, 0), (false, 1), (true, 0), (true, 1)] {
            assert!(standard_table(ac, slot).decoding().is_ok());
        }
    }

    #[test]
    fn extend_gives_jpeg_signed_values() {
        // 3-bit values: 000..011 are -7..-4, 100..111 are 4..7.
        let mut r = BitReader::new(&[0b0001_1100, 0xFF, 0xD9], 0);
        assert_eq!(r.signed(3), -7);
        assert_eq!(r.signed(3), 7);
    }
}
