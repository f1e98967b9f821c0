//! A quick look at a dataset folder from the image headers alone: counts per class, the range
//! of image sizes, the formats, and the files that cannot be images.

use super::decode::{format_name, probe_file};
use super::index::DirectoryIndex;
use crate::{ImageError, ImageErrorKind};
use rayon::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct Inspection {
    pub class_counts: Vec<usize>,
    /// Smallest and largest width and height among the readable images.
    pub width_range: Option<(u32, u32)>,
    pub height_range: Option<(u32, u32)>,
    pub formats: BTreeMap<&'static str, usize>,
    pub unusable: Vec<ImageError>,
}

/// Reads every file's header (in parallel); pixels are not decoded, so a file truncated after
/// its header shows up only when decoded (`Dataset::verify`).
pub fn inspect(index: &DirectoryIndex, max_pixels: u64) -> Inspection {
    let headers: Vec<_> = index
        .files
        .par_iter()
        .map(|rel| {
            let path = index.root.join(rel);
            let header = probe_file(&path)?;
            let pixels = header.width as u64 * header.height as u64;
            if pixels > max_pixels {
                let (width, height) = (header.width, header.height);
                let kind = ImageErrorKind::TooLarge {
                    width,
                    height,
                    pixels,
                    limit: max_pixels,
                };
                return Err(ImageError { path, kind });
            }
            Ok(header)
        })
        .collect();
    let mut report = Inspection {
        class_counts: index.class_counts(),
        ..Default::default()
    };
    let widen = |range: &mut Option<(u32, u32)>, v: u32| {
        *range = Some(range.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
    };
    for header in headers {
        match header {
            Ok(h) => {
                widen(&mut report.width_range, h.width);
                widen(&mut report.height_range, h.height);
                *report.formats.entry(format_name(h.format)).or_default() += 1;
            }
            Err(e) => report.unusable.push(e),
        }
    }
    report
}
