//! Line charts in the spirit of the tutorial's matplotlib figures: the accuracy and loss curves
//! of training and validation per epoch.

use super::text::{draw_text, text_width};
use crate::nn::train::History;
use image::{Rgb, RgbImage};

/// matplotlib's first two colours.
const BLUE: [u8; 3] = [31, 119, 180];
const ORANGE: [u8; 3] = [255, 127, 14];
const INK: [u8; 3] = [40, 40, 40];
const GRID: [u8; 3] = [225, 225, 225];

pub struct Series<'a> {
    pub label: &'a str,
    pub values: &'a [f64],
    pub color: [u8; 3],
}

/// Where the legend goes, as matplotlib's `loc`.
#[derive(Clone, Copy, PartialEq)]
pub enum Legend {
    LowerRight,
    UpperRight,
}

const WIDTH: u32 = 480;
const HEIGHT: u32 = 400;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 48.0;

/// One chart: x is the epoch (1, 2, …), y spans the values with a little margin.
pub fn line_chart(title: &str, series: &[Series], legend: Legend) -> RgbImage {
    let mut img = RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([255, 255, 255]));
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let (y0, y1) = (lo - pad, hi + pad);
    let points = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let plot_w = WIDTH as f64 - LEFT - RIGHT;
    let plot_h = HEIGHT as f64 - TOP - BOTTOM;
    let x_of = |i: usize| LEFT + plot_w * i as f64 / (points - 1) as f64;
    let y_of = |v: f64| TOP + plot_h * (1.0 - (v - y0) / (y1 - y0));

    for k in 0..=4 {
        let v = y0 + (y1 - y0) * k as f64 / 4.0;
        let y = y_of(v);
        line(&mut img, (LEFT, y), (LEFT + plot_w, y), GRID, 1.0);
        let label = format!("{v:.2}");
        draw_text(
            &mut img,
            (LEFT - 6.0 - text_width(&label, 12.0) as f64) as f32,
            (y - 7.0) as f32,
            12.0,
            &label,
            INK,
        );
    }
    let step = points.div_ceil(8).max(1);
    for i in (0..points).step_by(step) {
        let label = (i + 1).to_string();
        let x = x_of(i) - text_width(&label, 12.0) as f64 / 2.0;
        draw_text(
            &mut img,
            x as f32,
            (TOP + plot_h + 6.0) as f32,
            12.0,
            &label,
            INK,
        );
    }
    let x_label = "epoch";
    let lx = LEFT + plot_w / 2.0 - text_width(x_label, 13.0) as f64 / 2.0;
    draw_text(
        &mut img,
        lx as f32,
        (HEIGHT as f64 - 22.0) as f32,
        13.0,
        x_label,
        INK,
    );
    line(&mut img, (LEFT, TOP), (LEFT, TOP + plot_h), INK, 1.0);
    line(
        &mut img,
        (LEFT, TOP + plot_h),
        (LEFT + plot_w, TOP + plot_h),
        INK,
        1.0,
    );
    let tx = WIDTH as f64 / 2.0 - text_width(title, 15.0) as f64 / 2.0;
    draw_text(&mut img, tx as f32, 10.0, 15.0, title, INK);

    for s in series {
        for (i, pair) in s.values.windows(2).enumerate() {
            line(
                &mut img,
                (x_of(i), y_of(pair[0])),
                (x_of(i + 1), y_of(pair[1])),
                s.color,
                2.0,
            );
        }
        if let [only] = s.values {
            line(
                &mut img,
                (x_of(0) - 6.0, y_of(*only)),
                (x_of(0) + 6.0, y_of(*only)),
                s.color,
                6.0,
            );
        }
    }
    draw_legend(&mut img, series, legend, LEFT + plot_w, TOP, TOP + plot_h);
    img
}

fn draw_legend(
    img: &mut RgbImage,
    series: &[Series],
    legend: Legend,
    right: f64,
    top: f64,
    bottom: f64,
) {
    let width = series
        .iter()
        .map(|s| text_width(s.label, 12.0))
        .fold(0.0, f32::max) as f64
        + 40.0;
    let height = series.len() as f64 * 18.0 + 8.0;
    let x = right - width - 8.0;
    let y = if legend == Legend::UpperRight {
        top + 8.0
    } else {
        bottom - height - 8.0
    };
    for yy in y as u32..(y + height) as u32 {
        for xx in x as u32..(x + width) as u32 {
            img.put_pixel(xx, yy, Rgb([255, 255, 255]));
        }
    }
    for (i, s) in series.iter().enumerate() {
        let row = y + 6.0 + i as f64 * 18.0;
        line(
            img,
            (x + 6.0, row + 7.0),
            (x + 28.0, row + 7.0),
            s.color,
            2.0,
        );
        draw_text(img, (x + 34.0) as f32, row as f32, 12.0, s.label, INK);
    }
}

/// A straight segment `width` pixels thick.
fn line(img: &mut RgbImage, from: (f64, f64), to: (f64, f64), color: [u8; 3], width: f64) {
    let steps = ((to.0 - from.0).abs().max((to.1 - from.1).abs()) * 2.0)
        .ceil()
        .max(1.0) as usize;
    let r = (width / 2.0).max(0.5);
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (cx, cy) = (from.0 + (to.0 - from.0) * t, from.1 + (to.1 - from.1) * t);
        let (x0, x1) = ((cx - r).round() as i64, (cx + r).round() as i64 - 1);
        let (y0, y1) = ((cy - r).round() as i64, (cy + r).round() as i64 - 1);
        for y in y0..=y1.max(y0) {
            for x in x0..=x1.max(x0) {
                if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
                    img.put_pixel(x as u32, y as u32, Rgb(color));
                }
            }
        }
    }
}

/// The tutorial's figure: accuracy (left) and loss (right), training against validation.
pub fn history_plot(history: &History) -> RgbImage {
    let pick = |f: fn(&crate::nn::train::EpochLog) -> Option<f64>| -> Vec<f64> {
        history.epochs.iter().filter_map(f).collect()
    };
    let (acc, val_acc) = (pick(|e| Some(e.accuracy)), pick(|e| e.val_accuracy));
    let (loss, val_loss) = (pick(|e| Some(e.loss)), pick(|e| e.val_loss));
    let accuracy = line_chart(
        "Training and Validation Accuracy",
        &[
            Series {
                label: "Training Accuracy",
                values: &acc,
                color: BLUE,
            },
            Series {
                label: "Validation Accuracy",
                values: &val_acc,
                color: ORANGE,
            },
        ],
        Legend::LowerRight,
    );
    let losses = line_chart(
        "Training and Validation Loss",
        &[
            Series {
                label: "Training Loss",
                values: &loss,
                color: BLUE,
            },
            Series {
                label: "Validation Loss",
                values: &val_loss,
                color: ORANGE,
            },
        ],
        Legend::UpperRight,
    );
    let mut both = RgbImage::from_pixel(WIDTH * 2, HEIGHT, Rgb([255, 255, 255]));
    image::imageops::replace(&mut both, &accuracy, 0, 0);
    image::imageops::replace(&mut both, &losses, WIDTH as i64, 0);
    both
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::train::EpochLog;

    #[test]
    fn history_plot_draws_both_series_in_both_panels() {
        let epochs = (1..=5)
            .map(|e| EpochLog {
                epoch: e,
                loss: 1.5 / e as f64,
                accuracy: 0.4 + 0.1 * e as f64,
                val_loss: Some(1.2 + 0.05 * e as f64),
                val_accuracy: Some(0.5 + 0.02 * e as f64),
                seconds: 1.0,
                images_per_second: 100.0,
            })
            .collect();
        let img = history_plot(&History { epochs });
        assert_eq!(img.dimensions(), (960, 400));
        let count = |c: [u8; 3], x0: u32, x1: u32| {
            img.enumerate_pixels()
                .filter(|(x, _, p)| *x >= x0 && *x < x1 && p.0 == c)
                .count()
        };
        for (x0, x1) in [(0, 480), (480, 960)] {
            assert!(count(BLUE, x0, x1) > 300, "blue in {x0}..{x1}");
            assert!(count(ORANGE, x0, x1) > 300, "orange in {x0}..{x1}");
        }
    }
}
