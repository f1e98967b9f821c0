//! JPEG decoding through libjpeg-turbo with TensorFlow's settings — the fast integer IDCT and
//! fancy upsampling — so petal's pixels are TensorFlow's pixels, not just close to them.

use super::image_u8::ImageU8;
use crate::ImageErrorKind;
use std::cell::RefCell;
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

thread_local! {
    static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

/// Decodes a JPEG into 1, 3 or 4 channels. `Ok(None)` for CMYK/YCCK files, which libjpeg-turbo
/// cannot turn into RGB: the caller decodes those another way.
pub(crate) fn decode(
    bytes: &[u8],
    channels: usize,
    max_pixels: u64,
) -> Result<Option<ImageU8>, ImageErrorKind> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Decompressor::new();
        }
        match slot.as_ref() {
            Some(d) => decode_with(d, bytes, channels, max_pixels),
            None => Err(ImageErrorKind::Unreadable(
                "cannot start the JPEG decoder".into(),
            )),
        }
    })
}

fn decode_with(
    d: &Decompressor,
    bytes: &[u8],
    channels: usize,
    max_pixels: u64,
) -> Result<Option<ImageU8>, ImageErrorKind> {
    // SAFETY: the pointer and length describe `bytes`, which outlives the call.
    let status = unsafe { tj::tj3DecompressHeader(d.0, bytes.as_ptr(), bytes.len() as _) };
    if status != 0 {
        return Err(ImageErrorKind::Corrupt(d.last_error().1));
    }
    let colorspace = d.get(tj::TJPARAM_TJPARAM_COLORSPACE);
    if colorspace == tj::TJCS_TJCS_CMYK as c_int || colorspace == tj::TJCS_TJCS_YCCK as c_int {
        return Ok(None);
    }
    let width = d.get(tj::TJPARAM_TJPARAM_JPEGWIDTH).max(0) as u32;
    let height = d.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT).max(0) as u32;
    super::decode::check_size(width, height, max_pixels)?;
    let (width, height) = (width as usize, height as usize);
    let format = match channels {
        1 => tj::TJPF_TJPF_GRAY,
        3 => tj::TJPF_TJPF_RGB,
        _ => tj::TJPF_TJPF_RGBA,
    };
    let mut pixels = vec![0u8; width * height * channels];
    // SAFETY: `pixels` holds exactly height rows of `width * channels` bytes, the pitch given.
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
