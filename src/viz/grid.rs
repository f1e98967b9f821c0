//! The tutorial's `plt.subplot(3, 3, i)` pictures: images in a grid, each titled.

use super::text::{draw_text, text_width};
use crate::data::resize::{resize, Interpolation, Window};
use crate::data::{Dataset, ImageU8};
use image::{Rgb, RgbImage};

pub struct Tile {
    pub image: ImageU8,
    pub title: String,
}

/// The first `count` images of a dataset's first epoch (unreadable ones skipped), titled with
/// their classes: the tutorial's `train_ds.take(1)` picture.
pub fn first_images(dataset: &Dataset, count: usize) -> Vec<Tile> {
    dataset
        .epoch_order(0)
        .into_iter()
        .filter_map(|i| {
            let image = dataset.image(i)?;
            let title = dataset.class_names()[dataset.label(i) as usize].clone();
            Some(Tile { image, title })
        })
        .take(count)
        .collect()
}

const TILE: usize = 220;
const TITLE_SIZE: f32 = 18.0;
const TITLE_BAND: usize = 30;
const GAP: usize = 16;

/// Lays `tiles` out in rows of `columns`, each image scaled to fit a 220-pixel square under its
/// title.
pub fn image_grid(tiles: &[Tile], columns: usize) -> RgbImage {
    let columns = columns.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(columns);
    let cell_w = TILE + GAP;
    let cell_h = TILE + TITLE_BAND + GAP;
    let mut canvas = RgbImage::from_pixel(
        (columns * cell_w + GAP) as u32,
        (rows * cell_h + GAP) as u32,
        Rgb([255, 255, 255]),
    );
    for (k, tile) in tiles.iter().enumerate() {
        let left = GAP + (k % columns) * cell_w;
        let top = GAP + (k / columns) * cell_h;
        let width = text_width(&tile.title, TITLE_SIZE);
        let title_x = left as f32 + (TILE as f32 - width).max(0.0) / 2.0;
        draw_text(
            &mut canvas,
            title_x,
            top as f32,
            TITLE_SIZE,
            &tile.title,
            [0, 0, 0],
        );
        paste_fitted(&mut canvas, &tile.image, left, top + TITLE_BAND);
    }
    canvas
}

fn paste_fitted(canvas: &mut RgbImage, image: &ImageU8, left: usize, top: usize) {
    let scale = TILE as f32 / image.width.max(image.height) as f32;
    let w = ((image.width as f32 * scale).round() as usize).max(1);
    let h = ((image.height as f32 * scale).round() as usize).max(1);
    let fitted = resize(image, Window::whole(image), h, w, Interpolation::Bilinear);
    let (x0, y0) = (left + (TILE - w) / 2, top + (TILE - h) / 2);
    for (i, px) in fitted.pixels.chunks_exact(fitted.channels).enumerate() {
        let rgb = match *px {
            [v] | [v, _] => [v, v, v],
            [r, g, b, ..] => [r, g, b],
            _ => continue,
        };
        canvas.put_pixel((x0 + i % w) as u32, (y0 + i / w) as u32, Rgb(rgb));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_tiles_and_titles() {
        let red = ImageU8::new(4, 2, 3, [200, 0, 0].repeat(8));
        let gray = ImageU8::new(2, 2, 1, vec![90; 4]);
        let tiles = vec![
            Tile {
                image: red,
                title: "roses".into(),
            },
            Tile {
                image: gray,
                title: "daisy".into(),
            },
            Tile {
                image: ImageU8::new(1, 1, 3, vec![0, 0, 255]),
                title: "tulips".into(),
            },
        ];
        let canvas = image_grid(&tiles, 2);
        assert_eq!(canvas.dimensions(), (2 * 236 + 16, 2 * 266 + 16));
        // Centre of the first tile's image area is red, of the second gray, of the third blue.
        let centre = |col: usize, row: usize| {
            *canvas.get_pixel(
                (16 + col * 236 + 110) as u32,
                (16 + row * 266 + 30 + 110) as u32,
            )
        };
        assert_eq!(centre(0, 0), Rgb([200, 0, 0]));
        assert_eq!(centre(1, 0), Rgb([90, 90, 90]));
        assert_eq!(centre(0, 1), Rgb([0, 0, 255]));
        // Some title ink above the first image.
        let ink = (16..46)
            .flat_map(|y| (16..236).map(move |x| (x, y)))
            .filter(|&(x, y)| canvas.get_pixel(x, y).0[0] < 100)
            .count();
        assert!(ink > 20, "{ink}");
    }
}
