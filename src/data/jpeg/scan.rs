//! Decoding one scan's entropy-coded data into DCT coefficients: sequential scans block by
//! block, progressive scans (spectral selection and successive approximation) into the
//! coefficients earlier scans left. The arithmetic follows libjpeg's jdhuff.c and jdphuff.c,
//! its conduct on bad data included: a segment whose data ends early leaves its remaining
//! blocks empty, and a restart marker starts the next segment afresh.

use super::huffman::{BitReader, Decoding};
use super::markers::{corrupt, truncated, Frame, Scan, NATURAL_ORDER};
use crate::ImageErrorKind;

/// The Huffman tables a scan's components use, resolved from their slots.
pub(super) struct ScanTables<'t> {
    pub dc: Vec<&'t Decoding>,
    pub ac: Vec<&'t Decoding>,
}

/// Where a scan's data starts, and the restart interval in force (0: none).
pub(super) struct ScanInput<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    pub restart_interval: usize,
}

/// One block of a scan: the scan component's index within the scan, and the block's position
/// in its component's plane of blocks.
#[derive(Clone, Copy)]
struct BlockAt {
    in_scan: usize,
    x: usize,
    y: usize,
}

/// The blocks of each MCU in order: an interleaved scan's MCUs hold h × v blocks of each
/// component; a one-component scan's MCU is one block, and it covers only the blocks that
/// hold the component's samples.
fn for_each_mcu(
    frame: &Frame,
    scan: &Scan,
    mut on_mcu: impl FnMut(&[BlockAt]) -> Result<(), ImageErrorKind>,
) -> Result<(), ImageErrorKind> {
    if let [only] = scan.components[..] {
        let c = &frame.components[only];
        for y in 0..c.blocks_high {
            for x in 0..c.blocks_wide {
                on_mcu(&[BlockAt { in_scan: 0, x, y }])?;
            }
        }
        return Ok(());
    }
    let mut blocks = Vec::with_capacity(10);
    for my in 0..frame.mcus_high {
        for mx in 0..frame.mcus_wide {
            blocks.clear();
            for (in_scan, &ci) in scan.components.iter().enumerate() {
                let c = &frame.components[ci];
                for v in 0..c.v {
                    for h in 0..c.h {
                        blocks.push(BlockAt {
                            in_scan,
                            x: mx * c.h + h,
                            y: my * c.v + v,
                        });
                    }
                }
            }
            on_mcu(&blocks)?;
        }
    }
    Ok(())
}

/// The bit reader and the segment state restart markers reset.
struct Segments<'a> {
    reader: BitReader<'a>,
    restart_interval: usize,
    mcus_left: usize,
    dc_predictors: [i32; 4],
    eob_run: u32,
    /// The segment's data ended early: its remaining MCUs are left empty.
    starved: bool,
    /// The number (0–7) the next restart marker should carry.
    next_restart: u8,
    /// The data ended where a restart marker should be.
    cut: bool,
}

impl<'a> Segments<'a> {
    fn new(input: &ScanInput<'a>) -> Self {
        Segments {
            reader: BitReader::new(input.data, input.pos),
            restart_interval: input.restart_interval,
            mcus_left: input.restart_interval,
            dc_predictors: [0; 4],
            eob_run: 0,
            starved: false,
            next_restart: 0,
            cut: false,
        }
    }

    /// Called before each MCU: at a segment boundary, reads the restart marker and resets.
    fn before_mcu(&mut self) {
        if self.restart_interval == 0 {
            return;
        }
        if self.mcus_left == 0 {
            self.restart();
            self.mcus_left = self.restart_interval;
        }
        self.mcus_left -= 1;
    }

    /// Drops the rest of the segment's bits and reads the restart marker, resynchronising as
    /// libjpeg's `jpeg_resync_to_restart` does when it is not the expected one: a restart marker
    /// one or two ahead, or any other marker, is left for later (the next segment meets it at
    /// once); one or two behind is skipped for the next marker; any other restart marker is
    /// taken.
    fn restart(&mut self) {
        let data = self.reader_data();
        let expected = 0xD0 + self.next_restart;
        self.next_restart = (self.next_restart + 1) & 7;
        let mut pos = next_marker(data, self.reader.pos);
        loop {
            let Some(&marker) = data.get(pos + 1) else {
                self.cut = true;
                return;
            };
            let ahead = |k: u8| marker == 0xD0 + ((expected - 0xD0 + k) & 7);
            if marker == expected {
                self.resume_at(pos + 2, false);
                return;
            } else if marker < 0xC0 || ahead(6) || ahead(7) {
                pos = next_marker(data, pos + 2);
            } else if !(0xD0..=0xD7).contains(&marker) || ahead(1) || ahead(2) {
                // Left unread: the next segment decodes from zero bits until it notices, unless
                // this one had already run out.
                self.resume_at(pos, self.starved);
                return;
            } else {
                self.resume_at(pos + 2, false);
                return;
            }
        }
    }

    fn resume_at(&mut self, pos: usize, starved: bool) {
        self.reader = BitReader::new(self.reader_data(), pos);
        self.dc_predictors = [0; 4];
        self.eob_run = 0;
        self.starved = starved;
    }

    fn reader_data(&self) -> &'a [u8] {
        self.reader.data()
    }

    /// Called after each MCU: a file cut inside the data is an error; data that ran into a
    /// marker starves the rest of the segment.
    fn after_mcu(&mut self) -> Result<(), ImageErrorKind> {
        if self.reader.truncated() || self.cut {
            return Err(truncated());
        }
        if self.reader.overran_marker() {
            self.starved = true;
        }
        Ok(())
    }

    /// The progressive decoder refuses a DC value past 32 bits, as libjpeg-turbo's does.
    fn add_dc(&mut self, in_scan: usize, diff: i32) -> Result<i32, ImageErrorKind> {
        let value = self.dc_predictors[in_scan]
            .checked_add(diff)
            .ok_or_else(|| corrupt("DCT coefficient out of range"))?;
        self.dc_predictors[in_scan] = value;
        Ok(value)
    }

    /// The sequential decoder lets the DC value wrap, as libjpeg-turbo's does on such files.
    fn add_dc_wrapping(&mut self, in_scan: usize, diff: i32) -> i32 {
        let value = self.dc_predictors[in_scan].wrapping_add(diff);
        self.dc_predictors[in_scan] = value;
        value
    }
}

/// The position of the next marker (0xFF then a byte other than 0x00 and 0xFF) at or after
/// `pos`, or the end of the data.
fn next_marker(data: &[u8], mut pos: usize) -> usize {
    while pos + 1 < data.len()
        && !(data[pos] == 0xFF && data[pos + 1] != 0 && data[pos + 1] != 0xFF)
    {
        pos += 1;
    }
    pos.min(data.len())
}

/// Decodes a sequential scan, handing each block's coefficients (natural order) to
/// `on_block(component index, block x, block y, coefficients, any AC term nonzero)`.
/// Returns the position after the scan's data.
pub(super) fn decode_sequential(
    input: &ScanInput,
    frame: &Frame,
    scan: &Scan,
    tables: &ScanTables,
    mut on_block: impl FnMut(usize, usize, usize, &[i16; 64], bool),
) -> Result<usize, ImageErrorKind> {
    let mut seg = Segments::new(input);
    let mut block = [0i16; 64];
    for_each_mcu(frame, scan, |blocks| {
        seg.before_mcu();
        for b in blocks {
            block.fill(0);
            let has_ac = if seg.starved {
                false
            } else {
                decode_block(&mut seg, tables, b.in_scan, &mut block)
            };
            on_block(scan.components[b.in_scan], b.x, b.y, &block, has_ac);
        }
        seg.after_mcu()
    })?;
    Ok(seg.reader.pos)
}

/// One sequential block: the DC difference, then run/size-coded AC terms. Returns whether
/// any AC term was coded.
#[inline]
fn decode_block(
    seg: &mut Segments,
    tables: &ScanTables,
    in_scan: usize,
    block: &mut [i16; 64],
) -> bool {
    let r = &mut seg.reader;
    let size = r.symbol(tables.dc[in_scan]) as u32;
    let diff = r.signed(size);
    block[0] = seg.add_dc_wrapping(in_scan, diff) as i16;
    let (r, ac) = (&mut seg.reader, tables.ac[in_scan]);
    let mut has_ac = false;
    let mut k = 1;
    while k < 64 {
        r.ensure(16);
        if let Some((run, value)) = r.fast_ac(ac) {
            k += run;
            block[NATURAL_ORDER[k]] = value;
            has_ac = true;
            k += 1;
            continue;
        }
        let symbol = r.symbol(ac);
        let (run, size) = ((symbol >> 4) as usize, (symbol & 15) as u32);
        if size != 0 {
            k += run;
            block[NATURAL_ORDER[k]] = r.signed(size) as i16;
            has_ac = true;
            k += 1;
        } else if run == 15 {
            k += 16;
        } else {
            break;
        }
    }
    has_ac
}

/// Decodes a progressive scan into `coefficients` (one plane of blocks per frame component,
/// `stride_blocks` wide). Returns the position after the scan's data.
pub(super) fn decode_progressive(
    input: &ScanInput,
    frame: &Frame,
    scan: &Scan,
    tables: &ScanTables,
    coefficients: &mut [Vec<i16>],
) -> Result<usize, ImageErrorKind> {
    let mut seg = Segments::new(input);
    for_each_mcu(frame, scan, |blocks| {
        seg.before_mcu();
        if !seg.starved {
            for b in blocks {
                let ci = scan.components[b.in_scan];
                let at = (b.y * frame.components[ci].stride_blocks + b.x) * 64;
                let block: &mut [i16; 64] = (&mut coefficients[ci][at..at + 64])
                    .try_into()
                    .expect("64 coefficients");
                match (scan.start == 0, scan.high_bit == 0) {
                    (true, true) => dc_first(&mut seg, tables, scan, b.in_scan, block)?,
                    (true, false) => dc_refine(&mut seg, scan, block),
                    (false, true) => ac_first(&mut seg, tables, scan, block),
                    (false, false) => ac_refine(&mut seg, tables, scan, block),
                }
            }
        }
        seg.after_mcu()
    })?;
    Ok(seg.reader.pos)
}

fn dc_first(
    seg: &mut Segments,
    tables: &ScanTables,
    scan: &Scan,
    in_scan: usize,
    block: &mut [i16; 64],
) -> Result<(), ImageErrorKind> {
    let size = seg.reader.symbol(tables.dc[in_scan]) as u32;
    let diff = seg.reader.signed(size);
    let value = seg.add_dc(in_scan, diff)?;
    block[0] = value.wrapping_shl(scan.low_bit as u32) as i16;
    Ok(())
}

fn dc_refine(seg: &mut Segments, scan: &Scan, block: &mut [i16; 64]) {
    if seg.reader.bit() {
        block[0] |= 1 << scan.low_bit;
    }
}

fn ac_first(seg: &mut Segments, tables: &ScanTables, scan: &Scan, block: &mut [i16; 64]) {
    if seg.eob_run > 0 {
        seg.eob_run -= 1;
        return;
    }
    let (r, table) = (&mut seg.reader, tables.ac[0]);
    let mut k = scan.start;
    while k <= scan.end {
        let symbol = r.symbol(table);
        let (run, size) = ((symbol >> 4) as u32, (symbol & 15) as u32);
        if size != 0 {
            k += run as usize;
            let value = r.signed(size);
            block[NATURAL_ORDER[k]] = value.wrapping_shl(scan.low_bit as u32) as i16;
        } else if run == 15 {
            k += 15;
        } else {
            seg.eob_run = (1 << run) + r.bits(run) - 1;
            break;
        }
        k += 1;
    }
}

/// A refinement scan: one more bit of every coefficient already nonzero, and new coefficients
/// of magnitude 1 placed among the zero ones (jdphuff.c's decode_mcu_AC_refine).
fn ac_refine(seg: &mut Segments, tables: &ScanTables, scan: &Scan, block: &mut [i16; 64]) {
    let plus = 1i16 << scan.low_bit;
    let minus = (-1i16).wrapping_shl(scan.low_bit as u32);
    let r = &mut seg.reader;
    let mut k = scan.start;
    if seg.eob_run == 0 {
        while k <= scan.end {
            let symbol = r.symbol(tables.ac[0]);
            let (mut run, size) = ((symbol >> 4) as i32, symbol & 15);
            // A new coefficient is ±1 at this bit; libjpeg treats any other size as 1.
            let mut new_value = 0i16;
            if size != 0 {
                new_value = if r.bit() { plus } else { minus };
            } else if run != 15 {
                seg.eob_run = 1 << run;
                if run != 0 {
                    seg.eob_run += r.bits(run as u32);
                }
                break;
            }
            // Refine the nonzero coefficients passed over; stop at the run-th zero one.
            while k <= scan.end {
                let coefficient = &mut block[NATURAL_ORDER[k]];
                if *coefficient != 0 {
                    refine(r, coefficient, plus, minus);
                } else {
                    run -= 1;
                    if run < 0 {
                        break;
                    }
                }
                k += 1;
            }
            if new_value != 0 {
                block[NATURAL_ORDER[k]] = new_value;
            }
            k += 1;
        }
    }
    if seg.eob_run > 0 {
        while k <= scan.end {
            let coefficient = &mut block[NATURAL_ORDER[k]];
            if *coefficient != 0 {
                refine(r, coefficient, plus, minus);
            }
            k += 1;
        }
        seg.eob_run -= 1;
    }
}

#[inline]
fn refine(r: &mut BitReader, coefficient: &mut i16, plus: i16, minus: i16) {
    if r.bit() && *coefficient & plus == 0 {
        *coefficient = coefficient.wrapping_add(if *coefficient >= 0 { plus } else { minus });
    }
}
