//! petal's JPEG decoder, in safe Rust: TensorFlow's pixels without a C library.
//!
//! TensorFlow decodes with libjpeg-turbo, asking for its "fast integer" IDCT and "fancy"
//! upsampling. This decoder follows libjpeg-turbo's arithmetic step for step — the SSE2 IDCT's
//! 16-bit products, jdsample.c's triangle filters, jdcolor.c's fixed-point colour conversion,
//! TensorFlow's own CMYK step — so its pixels equal TensorFlow's. On damaged files it follows
//! libjpeg's conduct (stray bytes skipped, a segment whose data ends early left empty, restart
//! markers resynchronised, a file cut short refused, as in TensorFlow), though not every last
//! check: the README gives how often the two part ways on mutated files.
//!
//! Baseline, extended and progressive Huffman-coded JPEGs decode; arithmetic-coded, lossless,
//! hierarchical and 12-bit ones are refused with a message naming what they are.

mod huffman;
mod idct;
mod markers;
mod output;
mod scan;
#[cfg(all(test, feature = "libjpeg-turbo"))]
mod turbo;

use super::image_u8::ImageU8;
use crate::ImageErrorKind;
use huffman::{standard_table, HuffmanTable};
use markers::{corrupt, truncated, Frame, Scan, Segment};
use output::{ColorSpace, Conversion, Plane};
use scan::{ScanInput, ScanTables};

/// A crafted progressive file with thousands of tiny scans takes minutes; photos have at most
/// a few dozen. libjpeg-turbo's fuzzing limit, which petal's earlier decoder applied too.
const MAX_SCANS: usize = 500;

/// Decodes a JPEG into 1 (gray), 3 (RGB) or 4 (RGBA, opaque) channels, refusing images of more
/// than `max_pixels` pixels before allocating them.
pub(crate) fn decode(
    bytes: &[u8],
    channels: usize,
    max_pixels: u64,
) -> Result<ImageU8, ImageErrorKind> {
    let mut decoder = Decoder::new(bytes, channels)?;
    decoder.run(max_pixels)?;
    decoder.into_image()
}

/// The image's width and height from its frame header, without decoding.
pub(crate) fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageErrorKind> {
    let mut decoder = Decoder::new(bytes, 3)?;
    loop {
        let marker = decoder.next_marker()?;
        if let Some(frame) = decoder.frame_marker(marker)? {
            return Ok((frame.width as u32, frame.height as u32));
        }
        if marker == markers::SOS || marker == markers::EOI {
            return Err(corrupt("Invalid JPEG file structure: SOS before SOF"));
        }
        decoder.skip_or_read(marker)?;
    }
}

/// Where the decoded samples go: straight through the IDCT into planes when one scan carries
/// every component, or into coefficients that later scans refine and the IDCT reads at the end.
enum Store {
    Direct { planes: Vec<Plane> },
    Coefficients { blocks: Vec<Vec<i16>> },
}

struct Decoder<'a> {
    data: &'a [u8],
    channels: usize,
    pos: usize,
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<HuffmanTable>; 4],
    ac: [Option<HuffmanTable>; 4],
    restart_interval: usize,
    jfif: bool,
    adobe: Option<u8>,
    frame: Option<Frame>,
    /// Each component's dequantization multipliers, fixed at its first scan (as libjpeg
    /// latches quantization tables).
    multipliers: Vec<Option<[i16; 64]>>,
    store: Option<Store>,
    /// Guessed at the first scan from the markers before it, as libjpeg guesses it.
    space: Option<ColorSpace>,
    scans: usize,
    reached_eoi: bool,
}

impl<'a> Decoder<'a> {
    fn new(data: &'a [u8], channels: usize) -> Result<Self, ImageErrorKind> {
        if data.len() < 2 || data[0] != 0xFF || data[1] != markers::SOI {
            let start = data
                .iter()
                .take(2)
                .map(|b| format!("0x{b:02x}"))
                .collect::<Vec<_>>();
            return Err(corrupt(format!(
                "Not a JPEG file: starts with {}",
                start.join(" ")
            )));
        }
        Ok(Decoder {
            data,
            channels,
            pos: 2,
            quant: [None; 4],
            dc: Default::default(),
            ac: Default::default(),
            restart_interval: 0,
            jfif: false,
            adobe: None,
            frame: None,
            multipliers: Vec::new(),
            store: None,
            space: None,
            scans: 0,
            reached_eoi: false,
        })
    }

    /// The next marker's code, skipping stray bytes and fill bytes before it as libjpeg does.
    fn next_marker(&mut self) -> Result<u8, ImageErrorKind> {
        loop {
            while self.data.get(self.pos).is_some_and(|&b| b != 0xFF) {
                self.pos += 1;
            }
            while self.data.get(self.pos + 1) == Some(&0xFF) {
                self.pos += 1;
            }
            match self.data.get(self.pos + 1) {
                None => return Err(truncated()),
                Some(0) => self.pos += 2,
                Some(&marker) => {
                    self.pos += 2;
                    return Ok(marker);
                }
            }
        }
    }

    /// Reads the headers and every scan, up to the end-of-image marker. TensorFlow's data
    /// source refuses to read past the end, so a file without one is refused, as there.
    fn run(&mut self, max_pixels: u64) -> Result<(), ImageErrorKind> {
        while !self.next_segment(max_pixels)? {}
        Ok(())
    }

    /// Reads the next marker and its segment (a whole scan for SOS); true at the end marker.
    fn next_segment(&mut self, max_pixels: u64) -> Result<bool, ImageErrorKind> {
        let marker = self.next_marker()?;
        if let Some(frame) = self.frame_marker(marker)? {
            if self.frame.is_some() {
                return Err(corrupt("Invalid JPEG file structure: two SOF markers"));
            }
            super::decode::check_size(frame.width as u32, frame.height as u32, max_pixels)?;
            self.multipliers = vec![None; frame.components.len()];
            self.frame = Some(frame);
            return Ok(false);
        }
        match marker {
            markers::SOS => self.scan()?,
            markers::EOI => {
                self.reached_eoi = true;
                return Ok(true);
            }
            _ => self.skip_or_read(marker)?,
        }
        Ok(false)
    }

    /// A frame header's marker parsed, `None` for other markers; the unsupported kinds of
    /// frame are refused by name.
    fn frame_marker(&mut self, marker: u8) -> Result<Option<Frame>, ImageErrorKind> {
        let kind = match marker {
            0xC0 | 0xC1 => false,
            0xC2 => true,
            0xC3 => return Err(unsupported("lossless")),
            0xC5..=0xC7 | 0xCD..=0xCF => return Err(unsupported("hierarchical")),
            0xC9..=0xCB => return Err(unsupported("arithmetic-coded")),
            _ => return Ok(None),
        };
        let (seg, next) = Segment::at(self.data, self.pos)?;
        self.pos = next;
        markers::read_frame(seg, kind).map(Some)
    }

    /// Tables, restart interval and application markers are read; other segments skipped.
    fn skip_or_read(&mut self, marker: u8) -> Result<(), ImageErrorKind> {
        match marker {
            0xD0..=0xD7 | 0x01 => return Ok(()),
            markers::SOI => return Err(corrupt("Invalid JPEG file structure: two SOI markers")),
            markers::DQT | markers::DHT | markers::DRI | 0xE0..=0xEF | 0xFE | 0xCC | 0xDC => {}
            _ => return Err(corrupt(format!("Unsupported marker type 0x{marker:02x}"))),
        }
        let (mut seg, next) = Segment::at(self.data, self.pos)?;
        self.pos = next;
        match marker {
            markers::DQT => markers::read_quant_tables(seg, &mut self.quant),
            markers::DHT => markers::read_huffman_tables(seg, &mut self.dc, &mut self.ac),
            markers::DRI => {
                self.restart_interval = seg.u16()? as usize;
                Ok(())
            }
            0xE0..=0xEF => {
                markers::read_app(&seg, marker, &mut self.jfif, &mut self.adobe);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn scan(&mut self) -> Result<(), ImageErrorKind> {
        let frame = self
            .frame
            .take()
            .ok_or_else(|| corrupt("Invalid JPEG file structure: SOS before SOF"))?;
        let result = self.scan_with(&frame);
        self.frame = Some(frame);
        result
    }

    fn scan_with(&mut self, frame: &Frame) -> Result<(), ImageErrorKind> {
        let (seg, next) = Segment::at(self.data, self.pos)?;
        self.pos = next;
        let scan = markers::read_scan(seg, frame)?;
        self.scans += 1;
        if self.scans > MAX_SCANS {
            return Err(corrupt(format!("more than {MAX_SCANS} scans")));
        }
        if self.scans == 1 {
            if !frame.progressive {
                self.fill_standard_tables();
            }
            self.space = Some(ColorSpace::guess(frame, self.jfif, self.adobe));
            self.store = Some(self.choose_store(frame, &scan));
        } else if matches!(self.store, Some(Store::Direct { .. })) {
            return Err(corrupt("Didn't expect more than one scan"));
        }
        self.latch_quant_tables(frame, &scan)?;
        let tables = scan_tables(&self.dc, &self.ac, frame, &scan)?;
        let input = ScanInput {
            data: self.data,
            pos: self.pos,
            restart_interval: self.restart_interval,
        };
        let multipliers = &self.multipliers;
        self.pos = match self.store.as_mut().expect("chosen at the first scan") {
            Store::Direct { planes } => scan::decode_sequential(
                &input,
                frame,
                &scan,
                &tables,
                |ci, x, y, block, has_ac| {
                    let plane = &mut planes[ci];
                    if plane.stride == 0 {
                        return;
                    }
                    let mult = multipliers[ci].as_ref().expect("latched");
                    let out = &mut plane.samples[y * 8 * plane.stride + x * 8..];
                    if has_ac {
                        idct::idct_block(block, mult, out, plane.stride);
                    } else {
                        idct::flat_block(block[0], mult[0], out, plane.stride);
                    }
                },
            )?,
            Store::Coefficients { blocks } if frame.progressive => {
                scan::decode_progressive(&input, frame, &scan, &tables, blocks)?
            }
            Store::Coefficients { blocks } => {
                scan::decode_sequential(&input, frame, &scan, &tables, |ci, x, y, block, _| {
                    let at = (y * frame.components[ci].stride_blocks + x) * 64;
                    blocks[ci][at..at + 64].copy_from_slice(block);
                })?
            }
        };
        Ok(())
    }

    /// libjpeg-turbo's sequential decoder supplies the standard tables for slots 0 and 1 left
    /// empty when decoding starts (Motion-JPEG frames omit them); its progressive one does not.
    fn fill_standard_tables(&mut self) {
        for slot in 0..2 {
            if self.dc[slot].is_none() {
                self.dc[slot] = Some(standard_table(false, slot));
            }
            if self.ac[slot].is_none() {
                self.ac[slot] = Some(standard_table(true, slot));
            }
        }
    }

    fn choose_store(&self, frame: &Frame, scan: &Scan) -> Store {
        let sample_count = |c: &markers::Component| c.stride_blocks * c.rows_blocks * 64;
        if !frame.progressive && scan.components.len() == frame.components.len() {
            // A component the output does not need (chroma, for gray) gets an empty plane
            // (stride 0): its blocks are decoded but not transformed.
            let space = self.space.expect("guessed at the first scan");
            let needed = space.needed(self.channels, frame.components.len());
            let planes = frame
                .components
                .iter()
                .zip(needed)
                .map(|(c, needed)| match needed {
                    true => Plane {
                        samples: vec![0u8; sample_count(c)],
                        stride: c.stride_blocks * 8,
                    },
                    false => Plane {
                        samples: Vec::new(),
                        stride: 0,
                    },
                })
                .collect();
            Store::Direct { planes }
        } else {
            let blocks = frame
                .components
                .iter()
                .map(|c| vec![0i16; sample_count(c)])
                .collect();
            Store::Coefficients { blocks }
        }
    }

    fn latch_quant_tables(&mut self, frame: &Frame, scan: &Scan) -> Result<(), ImageErrorKind> {
        for &ci in &scan.components {
            if self.multipliers[ci].is_none() {
                let slot = frame.components[ci].quant_slot;
                let table = self.quant[slot].as_ref().ok_or_else(|| {
                    corrupt(format!("Quantization table 0x{slot:02x} was not defined"))
                })?;
                self.multipliers[ci] = Some(idct::multipliers(table));
            }
        }
        Ok(())
    }

    fn into_image(self) -> Result<ImageU8, ImageErrorKind> {
        let channels = self.channels;
        let frame = self
            .frame
            .ok_or_else(|| corrupt("the file has no image frame"))?;
        let Some(store) = self.store else {
            return Err(corrupt("the file ends before the image's first scan"));
        };
        if !self.reached_eoi {
            return Err(truncated());
        }
        let space = self.space.expect("guessed at the first scan");
        let planes = match store {
            Store::Direct { planes } => planes,
            Store::Coefficients { blocks } => {
                let needed = space.needed(channels, frame.components.len());
                transform(&frame, &blocks, &self.multipliers, &needed)
            }
        };
        let conversion = Conversion {
            space,
            channels,
            adobe: self.adobe.is_some(),
        };
        let pixels = output::to_pixels(&frame, &planes, &conversion);
        Ok(ImageU8::new(frame.width, frame.height, channels, pixels))
    }
}

/// The inverse DCT of every stored block. A component no scan carried has no quantization
/// table latched; libjpeg leaves its samples at mid-gray, as zero coefficients give.
fn transform(
    frame: &Frame,
    blocks: &[Vec<i16>],
    multipliers: &[Option<[i16; 64]>],
    needed: &[bool],
) -> Vec<Plane> {
    frame
        .components
        .iter()
        .zip(blocks)
        .zip(multipliers)
        .zip(needed)
        .map(|(((c, coefficients), mult), &needed)| {
            if !needed {
                return Plane {
                    samples: Vec::new(),
                    stride: 0,
                };
            }
            let stride = c.stride_blocks * 8;
            let mut samples = vec![128u8; coefficients.len()];
            if let Some(mult) = mult {
                for (i, block) in coefficients.chunks_exact(64).enumerate() {
                    let (x, y) = (i % c.stride_blocks, i / c.stride_blocks);
                    let block: &[i16; 64] = block.try_into().expect("64 coefficients");
                    idct::idct_block(block, mult, &mut samples[y * 8 * stride + x * 8..], stride);
                }
            }
            Plane { samples, stride }
        })
        .collect()
}

/// The tables the scan's kind uses, refusing missing ones as libjpeg does.
fn scan_tables<'t>(
    dc: &'t [Option<HuffmanTable>; 4],
    ac: &'t [Option<HuffmanTable>; 4],
    frame: &Frame,
    scan: &Scan,
) -> Result<ScanTables<'t>, ImageErrorKind> {
    let needs_dc = !frame.progressive || (scan.start == 0 && scan.high_bit == 0);
    let needs_ac = !frame.progressive || scan.start > 0;
    let mut tables = ScanTables {
        dc: Vec::new(),
        ac: Vec::new(),
    };
    for i in 0..scan.components.len() {
        if needs_dc {
            let slot = scan.dc_slots[i];
            let table = dc[slot]
                .as_ref()
                .ok_or_else(|| no_table(slot))?
                .decoding()?;
            if !table.fits_dc() {
                return Err(corrupt("Bogus Huffman table definition"));
            }
            tables.dc.push(table);
        }
        if needs_ac {
            let slot = scan.ac_slots[i];
            tables.ac.push(
                ac[slot]
                    .as_ref()
                    .ok_or_else(|| no_table(slot + 16))?
                    .decoding()?,
            );
        }
    }
    Ok(tables)
}

fn unsupported(kind: &str) -> ImageErrorKind {
    ImageErrorKind::Unreadable(format!(
        "{kind} JPEG is not supported (petal decodes baseline and progressive Huffman-coded JPEGs); \
         re-save the image as a standard JPEG or PNG"
    ))
}

fn no_table(slot: usize) -> ImageErrorKind {
    corrupt(format!("Huffman table 0x{slot:02x} was not defined"))
}

#[cfg(test)]
mod tests {
    use super::decode;

    const BASELINE: &[u8] = include_bytes!("../../../tests/golden/jpeg/baseline_420.jpg");

    /// The file without its JFIF marker (APP0 follows SOI), so only its component ids tell
    /// its colour space.
    fn without_jfif() -> Vec<u8> {
        assert_eq!(BASELINE[2..4], [0xFF, 0xE0]);
        let length = u16::from_be_bytes([BASELINE[4], BASELINE[5]]) as usize;
        [&BASELINE[..2], &BASELINE[4 + length..]].concat()
    }

    #[test]
    fn markers_after_the_first_scan_do_not_change_the_colour_space() {
        let plain = without_jfif();
        // An Adobe marker saying "RGB" (transform 0) after the scan, before the end marker.
        let adobe = [
            &[0xFF, 0xEE, 0x00, 0x0E][..],
            b"Adobe",
            &[0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00],
        ]
        .concat();
        let late = [&plain[..plain.len() - 2], &adobe, &[0xFF, 0xD9]].concat();
        for channels in [1, 3] {
            assert_eq!(
                decode(&late, channels, 1 << 20).unwrap(),
                decode(&plain, channels, 1 << 20).unwrap()
            );
        }
    }

    #[test]
    fn a_file_without_its_end_marker_is_refused_as_tensorflow_refuses_it() {
        let cut = &BASELINE[..BASELINE.len() - 2];
        assert!(decode(cut, 3, 1 << 20)
            .unwrap_err()
            .to_string()
            .contains("Premature end"));
    }

    #[test]
    fn sides_over_libjpegs_limit_are_refused() {
        let mut wide = BASELINE.to_vec();
        let sof = wide.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        wide[sof + 7..sof + 9].copy_from_slice(&65501u16.to_be_bytes());
        let err = decode(&wide, 3, u64::MAX).unwrap_err().to_string();
        assert!(err.contains("65500"), "{err}");
    }
}
