//! PNG line charts of a run's metrics, drawn with plotters on its bitmap
//! backend. Text is set in a bundled font (DejaVu Sans Mono, `assets/`, under
//! the Bitstream Vera licence in `assets/DejaVu-LICENSE.txt`), so a fresh
//! machine needs no font or graphics library.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
const FAMILY: &str = "cohort-sans";
const SIZE: (u32, u32) = (900, 560);
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// plotters would not register the bundled font.
    #[error("the bundled font could not be loaded")]
    Font,
    /// plotters failed to draw or write the PNG.
    #[error("chart {path}: {message}")]
    Draw {
        /// The chart's file.
        path: PathBuf,
        /// plotters' error.
        message: String,
    },
    /// No series has a point with finite coordinates.
    #[error("chart {path}: no finite points to draw")]
    Empty {
        /// The chart's file.
        path: PathBuf,
    },
}

/// One named line of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The line's legend entry; the legend is left out for one unnamed series.
    pub name: String,
    /// The points in drawing order; those with a non-finite coordinate are skipped.
    pub points: Vec<(f64, f64)>,
}

/// What a chart shows.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    /// The caption above the plot.
    pub title: &'a str,
    /// The x axis's description.
    pub x_label: &'a str,
    /// The y axis's description.
    pub y_label: &'a str,
}

fn font_family() -> Result<&'static str, PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok { Ok(FAMILY) } else { Err(PlotError::Font) }
}

/// Draws `series` as lines with markers into a PNG at `path`.
pub fn line_chart(path: &Path, chart: Chart<'_>, series: &[Series]) -> Result<(), PlotError> {
    let family = font_family()?;
    let draw_error = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().filter(finite).copied())
        .collect();
    if points.is_empty() {
        return Err(PlotError::Empty {
            path: path.to_owned(),
        });
    }
    let (mut x_min, mut x_max, mut y_min, mut y_max) = points.iter().fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if x_max <= x_min {
        (x_min, x_max) = (x_min - 1.0, x_max + 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-3);
    (y_min, y_max) = (y_min - pad, y_max + pad);

    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(&e))?;
    let mut context = ChartBuilder::on(&root)
        .caption(chart.title, (family, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x_min..x_max, y_min..y_max)
        .map_err(|e| draw_error(&e))?;
    context
        .configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .label_style((family, 15))
        .axis_desc_style((family, 17))
        .draw()
        .map_err(|e| draw_error(&e))?;
    for (i, line) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let data: Vec<(f64, f64)> = line.points.iter().filter(finite).copied().collect();
        context
            .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))
            .map_err(|e| draw_error(&e))?
            .label(line.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        context
            .draw_series(data.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|e| draw_error(&e))?;
    }
    if series.len() > 1 || series.iter().any(|s| !s.name.is_empty()) {
        context
            .configure_series_labels()
            .label_font((family, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| draw_error(&e))?;
    }
    root.present().map_err(|e| draw_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png_and_refuses_an_empty_chart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accuracy.png");
        let chart = Chart {
            title: "accuracy",
            x_label: "round",
            y_label: "held-out accuracy",
        };
        let series = [Series {
            name: "fedavg".into(),
            points: vec![(1.0, 0.5), (2.0, 0.8), (3.0, f64::NAN), (4.0, 0.9)],
        }];
        line_chart(&path, chart, &series).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
        let empty = [Series {
            name: "none".into(),
            points: vec![(1.0, f64::NAN)],
        }];
        assert!(matches!(
            line_chart(&dir.path().join("empty.png"), chart, &empty),
            Err(PlotError::Empty { .. })
        ));
    }
}
