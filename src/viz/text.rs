//! Text drawn into pictures with the bundled DejaVu Sans, so titles look the same on every
//! machine and no system font is needed.

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use image::RgbImage;

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn font() -> FontRef<'static> {
    FontRef::try_from_slice(DEJAVU_SANS).expect("the bundled DejaVu Sans font parses")
}

/// Width in pixels of `text` at `size` pixels per em.
pub fn text_width(text: &str, size: f32) -> f32 {
    let font = font();
    let scaled = font.as_scaled(PxScale::from(size));
    text.chars()
        .map(|c| scaled.h_advance(font.glyph_id(c)))
        .sum()
}

/// Draws `text` with its top-left corner at (`x`, `top`), blending anti-aliased edges.
pub fn draw_text(canvas: &mut RgbImage, x: f32, top: f32, size: f32, text: &str, color: [u8; 3]) {
    let font = font();
    let scaled = font.as_scaled(PxScale::from(size));
    let baseline = top + scaled.ascent();
    let mut pen = x;
    for c in text.chars() {
        let id = font.glyph_id(c);
        let glyph = id.with_scale_and_position(PxScale::from(size), point(pen, baseline));
        pen += scaled.h_advance(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let px = bounds.min.x as i64 + gx as i64;
            let py = bounds.min.y as i64 + gy as i64;
            if px < 0 || py < 0 || px >= canvas.width() as i64 || py >= canvas.height() as i64 {
                return;
            }
            let pixel = canvas.get_pixel_mut(px as u32, py as u32);
            let a = coverage.clamp(0.0, 1.0);
            for (dst, &src) in pixel.0.iter_mut().zip(&color) {
                *dst = (*dst as f32 * (1.0 - a) + src as f32 * a).round() as u8;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_marks_pixels_inside_its_box_only() {
        let mut canvas = RgbImage::from_pixel(120, 40, image::Rgb([255, 255, 255]));
        draw_text(&mut canvas, 10.0, 5.0, 20.0, "daisy", [0, 0, 0]);
        let dark: Vec<_> = canvas
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0[0] < 128)
            .collect();
        assert!(dark.len() > 50);
        let width = text_width("daisy", 20.0);
        assert!(width > 30.0 && width < 80.0, "{width}");
        assert!(dark
            .iter()
            .all(|(x, y, _)| *x >= 10 && (*x as f32) <= 11.0 + width && *y < 40));
    }
}
