//! libjpeg-turbo with TensorFlow's settings — the fast integer IDCT and fancy upsampling — as
//! the oracle petal's own decoder is tested against (feature `libjpeg-turbo`).
//!
//! Every file gets a decompressor of its own, destroyed after it. A libjpeg handle reused after
//! an error, or after a stream of tables only, keeps the earlier file's state: its next header
//! call reported an earlier image's size, and the pixel buffer sized from it was overrun. A
//! fresh handle costs a few microseconds against the milliseconds a photo takes to decode.

use crate::data::image_u8::ImageU8;
use crate::ImageErrorKind;
use std::ffi::{c_int, CStr};
use turbojpeg_sys as tj;

/// One libjpeg-turbo decompressor, freed on drop.
struct Decompressor(tj::tjhandle);

impl Decompressor {
    fn new() -> Option<Self> {
        // SAFETY: tj3Init has no preconditions; a null result means failure.
        let handle = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if handle.is_null() {
            return None;
        }
        let d = Decompressor(handle);
        d.set(tj::TJPARAM_TJPARAM_FASTDCT, 1);
        Some(d)
    }

    fn set(&self, param: tj::TJPARAM, value: c_int) {
        // SAFETY: the handle is valid for our lifetime; the parameter ids come from the bindings.
        unsafe { tj::tj3Set(self.0, param as c_int, value) };
    }

    fn get(&self, param: tj::TJPARAM) -> c_int {
        // SAFETY: as in `set`.
        unsafe { tj::tj3Get(self.0, param as c_int) }
    }

    fn last_error(&self) -> (bool, String) {
        // SAFETY: libjpeg-turbo returns a NUL-terminated message owned by the handle.
        let (code, text) = unsafe {
            let code = tj::tj3GetErrorCode(self.0);
            (
                code,
                CStr::from_ptr(tj::tj3GetErrorStr(self.0))
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        (code == tj::TJERR_TJERR_FATAL as c_int, text)
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) };
    }
}

/// Decodes a JPEG into 1, 3 or 4 channels. `Ok(None)` for CMYK/YCCK files, which libjpeg-turbo
/// cannot turn into RGB: the caller decodes those another way.
pub(crate) fn decode(
    bytes: &[u8],
    channels: usize,
    max_pixels: u64,
) -> Result<Option<ImageU8>, ImageErrorKind> {
    let Some(d) = Decompressor::new() else {
        return Err(ImageErrorKind::Unreadable(
            "cannot start the JPEG decoder (out of memory?)".into(),
        ));
    };
    decode_with(&d, bytes, channels, max_pixels)
}

/// libjpeg-turbo's own fuzzing limit: photos have at most a few dozen scans, while a crafted
/// progressive file with thousands of tiny ones takes minutes to decode.
const MAX_SCANS: c_int = 500;

fn decode_with(
    d: &Decompressor,
    bytes: &[u8],
    channels: usize,
    max_pixels: u64,
) -> Result<Option<ImageU8>, ImageErrorKind> {
    d.set(tj::TJPARAM_TJPARAM_SAVEMARKERS, 0);
    d.set(tj::TJPARAM_TJPARAM_SCANLIMIT, MAX_SCANS);
    // SAFETY: the pointer and length describe `bytes`, which outlives the call.
    let status = unsafe { tj::tj3DecompressHeader(d.0, bytes.as_ptr(), bytes.len() as _) };
    if status != 0 {
        return Err(ImageErrorKind::Corrupt(d.last_error().1));
    }
    let colorspace = d.get(tj::TJPARAM_TJPARAM_COLORSPACE);
    if colorspace == tj::TJCS_TJCS_CMYK as c_int || colorspace == tj::TJCS_TJCS_YCCK as c_int {
        return Ok(None);
    }
    // A fresh handle reports -1 until a frame header sets the size; a stream of tables only
    // (a photo cut before its frame header) passes the header call without one.
    let (width, height) = (
        d.get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        d.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    if width < 0 || height < 0 {
        return Err(ImageErrorKind::Corrupt(
            "the file ends before the image's frame header".into(),
        ));
    }
    crate::data::decode::check_size(width as u32, height as u32, max_pixels)?;
    let (width, height) = (width as usize, height as usize);
    let format = match channels {
        1 => tj::TJPF_TJPF_GRAY,
        3 => tj::TJPF_TJPF_RGB,
        _ => tj::TJPF_TJPF_RGBA,
    };
    let mut pixels = vec![0u8; width * height * channels];
    // A second guard on the buffer: libjpeg-turbo refuses a frame of more pixels than it holds.
    d.set(
        tj::TJPARAM_TJPARAM_MAXPIXELS,
        c_int::try_from(width * height).unwrap_or(c_int::MAX),
    );
    // SAFETY: `pixels` holds `height` rows of `width * channels` bytes, the pitch given. The
    // decompressor is fresh, and the decompression reads the frame header of these same bytes
    // as the header call did, so it writes those `height` rows of `width` pixels and no more.
    let status = unsafe {
        tj::tj3Decompress8(
            d.0,
            bytes.as_ptr(),
            bytes.len() as _,
            pixels.as_mut_ptr(),
            (width * channels) as c_int,
            format,
        )
    };
    if status != 0 {
        let (fatal, message) = d.last_error();
        // TensorFlow refuses truncated JPEGs; other warnings (stray bytes) it lets pass.
        if fatal || message.contains("Premature end") {
            return Err(ImageErrorKind::Corrupt(message));
        }
    }
    Ok(Some(ImageU8::new(width, height, channels, pixels)))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    pub(super) fn flower_photos() -> Option<Vec<PathBuf>> {
        let dir = std::env::var_os("PETAL_FLOWERS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/flower_photos")
            });
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .filter(|e| e.path().is_dir())
            .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .collect();
        files.sort();
        Some(files)
    }

    #[test]
    fn petal_decodes_every_flower_photo_as_libjpeg_turbo_does() {
        let Some(files) = flower_photos() else {
            eprintln!("skipped: flower_photos not found (set PETAL_FLOWERS)");
            return;
        };
        let mut differing = Vec::new();
        for path in &files {
            let bytes = std::fs::read(path).unwrap();
            for channels in [3, 1] {
                let turbo = super::decode(&bytes, channels, u64::MAX).unwrap().unwrap();
                let petal = super::super::decode(&bytes, channels, u64::MAX).unwrap();
                if turbo != petal {
                    let diff = turbo
                        .pixels
                        .iter()
                        .zip(&petal.pixels)
                        .filter(|(a, b)| a != b)
                        .count();
                    differing.push(format!(
                        "{} ({channels} channels): {diff} bytes",
                        path.display()
                    ));
                }
            }
        }
        assert!(
            differing.is_empty(),
            "{} of {} decodes differ:\n{}",
            differing.len(),
            2 * files.len(),
            differing.join("\n")
        );
    }
}

#[cfg(test)]
mod speed {
    /// `cargo test --release --features libjpeg-turbo -- --ignored --nocapture decode_speed`
    #[test]
    #[ignore]
    fn decode_speed() {
        let files = super::tests::flower_photos().unwrap();
        let photos: Vec<Vec<u8>> = files
            .iter()
            .step_by(7)
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        // Short alternating rounds, best of each: the machine's speed drifts within seconds.
        let (mut turbo_best, mut petal_best) = (0f64, 0f64);
        for _ in 0..10 {
            let t = std::time::Instant::now();
            for b in &photos {
                super::decode(b, 3, u64::MAX).unwrap();
            }
            turbo_best = turbo_best.max(photos.len() as f64 / t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            for b in &photos {
                super::super::decode(b, 3, u64::MAX).unwrap();
            }
            petal_best = petal_best.max(photos.len() as f64 / t.elapsed().as_secs_f64());
        }
        println!(
            "best of 10: libjpeg-turbo {turbo_best:.0}/s, petal {petal_best:.0}/s, ratio {:.2}",
            petal_best / turbo_best
        );
    }
}
