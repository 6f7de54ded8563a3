//! The testbed's plot: time until the last client is done, against N.

use std::path::Path;

use lanswarm::testbed::{Outcome, Params, Setup};
use plotters::prelude::*;

const CS_COLOR: RGBColor = RGBColor(200, 60, 40);
const P2P_COLOR: RGBColor = RGBColor(40, 90, 200);
const SS_COLOR: RGBColor = RGBColor(30, 150, 70);

/// Writes an SVG with the measured C/S and P2P times and both lower bounds.
pub fn write_svg(
    path: &Path,
    n_list: &[usize],
    params: &Params,
    outcomes: &[Outcome],
) -> Result<(), String> {
    draw(path, n_list, params, outcomes).map_err(|e| format!("plotting to {}: {e}", path.display()))
}

fn draw(
    path: &Path,
    n_list: &[usize],
    params: &Params,
    outcomes: &[Outcome],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut ns = n_list.to_vec();
    ns.sort_unstable();
    ns.dedup();
    let measured = |setup: Setup| -> Vec<(f64, f64)> {
        ns.iter()
            .filter_map(|&n| {
                outcomes
                    .iter()
                    .find(|o| o.setup == setup && o.n == n)
                    .map(|o| (n as f64, o.seconds))
            })
            .collect()
    };
    let bound = |setup: Setup| -> Vec<(f64, f64)> {
        ns.iter()
            .map(|&n| (n as f64, params.bound(setup, n)))
            .collect()
    };
    let series = [
        (
            measured(Setup::ClientServer),
            CS_COLOR,
            true,
            "C/S measured",
        ),
        (
            bound(Setup::ClientServer),
            CS_COLOR,
            false,
            "C/S lower bound",
        ),
        (measured(Setup::PeerToPeer), P2P_COLOR, true, "P2P measured"),
        (
            measured(Setup::SuperSeed),
            SS_COLOR,
            true,
            "P2P measured, super-seeding",
        ),
        (
            bound(Setup::PeerToPeer),
            P2P_COLOR,
            false,
            "P2P lower bound",
        ),
    ];
    let y_max = series
        .iter()
        .flat_map(|(pts, ..)| pts.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let x_max = *ns.last().unwrap_or(&1) as f64 + 0.5;

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = format!(
        "Distributing {} MiB to N clients ({} Mbit/s uploads)",
        params.file_bytes / (1024 * 1024),
        params.rate_mbit
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("N (clients)")
        .y_desc("time until the last client is done (s)")
        .x_labels(ns.len().max(2) * 2)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| {
            if y_max < 10.0 {
                format!("{y:.1}")
            } else {
                format!("{y:.0}")
            }
        })
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    for (points, color, is_measured, label) in series {
        if points.is_empty() {
            continue;
        }
        if is_measured {
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        } else {
            chart
                .draw_series(DashedLineSeries::new(points, 8, 5, color.stroke_width(1)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1))
                });
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
}
