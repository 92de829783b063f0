//! The report's PNG: validation loss and accuracy per epoch for each mode (plotters,
//! bitmap backend, text through ab_glyph with a system TrueType font).

use hetal_train::train::EpochRecord;
use plotters::prelude::*;
use std::path::Path;

/// Fonts tried for the labels (DejaVu ships with most Linux distributions).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/Library/Fonts/Arial.ttf",
];

/// Draws `curves` (label, per-epoch history) to `path` as a PNG 1000 pixels wide (420
/// high, 30 more per curve beyond three). Returns
/// `Ok(false)` without writing when no font is found.
///
/// # Errors
/// Drawing or encoding errors.
pub fn curves(
    path: &Path,
    title: &str,
    curves: &[(&str, &[EpochRecord])],
) -> Result<bool, Box<dyn std::error::Error>> {
    let Some(font) = FONTS.iter().find_map(|p| std::fs::read(p).ok()) else {
        return Ok(false);
    };
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| "invalid font")?;
    let epochs = curves
        .iter()
        .flat_map(|(_, h)| h.iter().map(|r| r.epoch))
        .max()
        .unwrap_or(1)
        .max(1);
    let max_loss = curves
        .iter()
        .flat_map(|(_, h)| h.iter().map(|r| r.val_loss))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-3);
    // Taller for many curves, so the legend leaves room for the lines.
    let height = 420 + 30 * curves.len().saturating_sub(3) as u32;
    let root = BitMapBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 18))?;
    let (left, right) = root.split_horizontally(500);
    let color_of = |i: usize| -> RGBAColor {
        match i {
            0 => BLUE.to_rgba(),
            1 => RED.to_rgba(),
            2 => GREEN.to_rgba(),
            _ => Palette99::pick(i).to_rgba(),
        }
    };
    for (area, name, is_loss) in [
        (left, "validation loss", true),
        (right, "validation accuracy", false),
    ] {
        let y_max = if is_loss { max_loss * 1.1 } else { 1.0 };
        let mut chart = ChartBuilder::on(&area)
            .caption(name, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..epochs as f64, 0f64..y_max)?;
        chart.configure_mesh().x_desc("epoch").draw()?;
        for (i, (label, h)) in curves.iter().enumerate() {
            let color = color_of(i);
            let pts: Vec<(f64, f64)> = h
                .iter()
                .map(|r| {
                    (
                        r.epoch as f64,
                        if is_loss { r.val_loss } else { r.val_accuracy },
                    )
                })
                .filter(|p| p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(*label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(true)
}
