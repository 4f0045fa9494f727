//! Line charts as inline SVG, for the `--report` page (`html.rs`): scales,
//! labelled axes and lines, with progjar's page kit (`progjar::svg`: the
//! 1-2-5 step, tick labels, escaping).
//!
//! Written here rather than taken from a plotting crate because the page needs
//! only lines on linear and log axes, and a crate (plotters and the like) would
//! bring fonts or a renderer for what is a few `<line>`s and `<text>`s. Every
//! label's place is computed from the tick spacing, so labels never overlap: a
//! linear axis has at most about six ticks, a log axis one per decade (with 2 and
//! 5 between only when few decades are shown).

use std::fmt::Write as _;

use progjar::svg::{self, escape};

/// Space around the plot inside the SVG, for tick labels and axis titles (px).
const LEFT: f64 = 78.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 44.0;

/// How values map to a fraction of an axis.
#[derive(Debug, Clone, Copy)]
pub enum Scale {
    /// Evenly, from `lo` to `hi`.
    Linear { lo: f64, hi: f64 },
    /// By their logarithm, from `lo` to `hi` (both > 0).
    Log { lo: f64, hi: f64 },
}

impl Scale {
    /// 0 at the low end, 1 at the high end (outside for values out of range).
    fn fraction(&self, v: f64) -> f64 {
        match *self {
            Scale::Linear { lo, hi } => (v - lo) / (hi - lo),
            Scale::Log { lo, hi } => (v.max(lo * 1e-3).ln() - lo.ln()) / (hi.ln() - lo.ln()),
        }
    }
}

/// One axis: its scale, its ticks with their labels, its title.
pub struct Axis {
    pub scale: Scale,
    pub ticks: Vec<(f64, String)>,
    pub title: String,
}

/// A linear axis from 0 to the first tick at or past `max`, with about five
/// ticks at 1, 2 or 5 × 10ⁿ, labelled by `label(value, step)`.
pub fn linear(max: f64, title: &str, label: impl Fn(f64, f64) -> String) -> Axis {
    let (step, n) = round_step(max);
    let ticks = (0..=n).map(|i| i as f64 * step).map(|v| (v, label(v, step))).collect();
    Axis { scale: Scale::Linear { lo: 0.0, hi: n as f64 * step }, ticks, title: title.to_string() }
}

/// [`linear`], but ending at `max` itself (time ends when the run did).
pub fn linear_to(max: f64, title: &str, label: impl Fn(f64, f64) -> String) -> Axis {
    let (step, n) = round_step(max);
    let max = if max > 0.0 { max } else { n as f64 * step };
    let ticks = (0..=n)
        .map(|i| i as f64 * step)
        .filter(|v| *v <= max * 1.0001)
        .map(|v| (v, label(v, step)))
        .collect();
    Axis { scale: Scale::Linear { lo: 0.0, hi: max }, ticks, title: title.to_string() }
}

/// The tick step (1, 2 or 5 × 10ⁿ) for at most five steps from 0 to `max`
/// (an empty chart's axis goes to 1), and how many steps reach past `max`.
fn round_step(max: f64) -> (f64, usize) {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let step = svg::step(max, 5.0);
    (step, (max / step - 1e-9).ceil().max(1.0) as usize)
}

/// A log axis covering `min..=max` (both ≥ 1), from the 1-2-5 step at or below
/// `min` to the one at or above `max`, labelled by `label`.
pub fn log(min: f64, max: f64, title: &str, label: impl Fn(f64) -> String) -> Axis {
    let min = min.max(1.0);
    let max = max.max(min);
    let steps: Vec<f64> = (0..12).flat_map(|e| svg::MULTIPLES.map(|m| m * 10f64.powi(e))).collect();
    let mut lo = steps.iter().rev().find(|s| **s <= min).copied().unwrap_or(1.0);
    let mut hi = steps.iter().find(|s| **s >= max * 1.0001).copied().unwrap_or(lo * 10.0);
    // Past two decades, 2 and 5 would crowd the decades' labels: whole decades then.
    let decades_only = hi / lo > 100.0;
    if decades_only {
        lo = 10f64.powf(lo.log10().floor());
        hi = 10f64.powf(hi.log10().ceil());
    }
    let within: Vec<f64> = steps.iter().copied().filter(|s| *s >= lo && *s <= hi).collect();
    let ticks = within
        .into_iter()
        .filter(|s| !decades_only || (s.log10().fract()).abs() < 1e-9)
        .map(|v| (v, label(v)))
        .collect();
    Axis { scale: Scale::Log { lo, hi }, ticks, title: title.to_string() }
}

/// A line: its points (`None` breaks it), its colour, and whether it is dashed.
pub struct Line {
    pub points: Vec<(f64, Option<f64>)>,
    pub color: &'static str,
    pub dashed: bool,
}

/// A shaded stretch of the x axis with an optional label above the plot (where
/// no line can cross it): a phase.
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub fill: &'static str,
    pub label: Option<&'static str>,
}

/// A chart `width` × `height` px: the place of the plot inside it, and its axes.
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub x: Axis,
    pub y: Axis,
}

impl Chart {
    fn px(&self, v: f64) -> f64 {
        LEFT + self.x.scale.fraction(v) * (self.width - LEFT - RIGHT)
    }

    fn py(&self, v: f64) -> f64 {
        let bottom = self.height - BOTTOM;
        bottom - self.y.scale.fraction(v) * (bottom - TOP)
    }

    /// The whole SVG: bands, grid and axes, then the lines on top.
    pub fn svg(&self, label: &str, bands: &[Band], lines: &[Line]) -> String {
        let (w, h) = (self.width, self.height);
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">\n",
            escape(label)
        );
        self.bands(&mut s, bands);
        self.axes(&mut s);
        for line in lines {
            self.line(&mut s, line);
        }
        s.push_str("</svg>\n");
        s
    }

    fn bands(&self, s: &mut String, bands: &[Band]) {
        let (top, bottom) = (TOP, self.height - BOTTOM);
        for b in bands {
            let (x0, x1) = (self.px(b.from), self.px(b.to));
            let _ = writeln!(
                s,
                "<rect class=\"band\" x=\"{x0:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
                (x1 - x0).max(1.0),
                bottom - top,
                b.fill
            );
            // Where a phase begins, a line: a phase may be too short to see as a shade.
            if b.from > 0.0 {
                let _ = writeln!(
                    s,
                    "<line class=\"phase\" x1=\"{x0:.1}\" y1=\"{top}\" x2=\"{x0:.1}\" y2=\"{bottom}\"/>"
                );
            }
            // A label only where it fits: about 7 px a character at 12 px.
            if let Some(text) = b.label.filter(|t| x1 - x0 > t.len() as f64 * 7.0 + 8.0) {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" class=\"band-label\" text-anchor=\"middle\">{text}</text>",
                    (x0 + x1) / 2.0,
                    top - 5.0
                );
            }
        }
    }

    /// Grid lines, tick labels and the two axis titles.
    fn axes(&self, s: &mut String) {
        let (left, right, top, bottom) = (LEFT, self.width - RIGHT, TOP, self.height - BOTTOM);
        for (v, text) in &self.y.ticks {
            let y = self.py(*v);
            let _ = writeln!(
                s,
                "<line class=\"grid\" x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                left - 6.0,
                y + 4.0,
                escape(text)
            );
        }
        for (v, text) in &self.x.ticks {
            let x = self.px(*v);
            let _ = writeln!(
                s,
                "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                bottom + 16.0,
                escape(text)
            );
        }
        let _ = writeln!(
            s,
            "<rect class=\"frame\" x=\"{left}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\"/>\n\
             <text class=\"title\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
             <text class=\"title\" transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            right - left,
            bottom - top,
            (left + right) / 2.0,
            self.height - 6.0,
            escape(&self.x.title),
            (top + bottom) / 2.0,
            escape(&self.y.title)
        );
    }

    /// A polyline per unbroken run of points, and a dot on each point when they
    /// are few enough to tell apart (a minute's worth). A point alone (a
    /// part-second cut off from the line) is a hollow dot, however many points.
    fn line(&self, s: &mut String, line: &Line) {
        let dash = if line.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        let dots = line.points.len() <= 40;
        for run in line.points.split(|(_, y)| y.is_none()).filter(|r| !r.is_empty()) {
            if let [(x, Some(y))] = run {
                let _ = writeln!(
                    s,
                    "<circle class=\"apart\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"#fff\" stroke=\"{}\" stroke-width=\"2\"/>",
                    self.px(*x),
                    self.py(*y),
                    line.color
                );
                continue;
            }
            let coords: Vec<String> = run
                .iter()
                .filter_map(|(x, y)| y.map(|y| format!("{:.1},{:.1}", self.px(*x), self.py(y))))
                .collect();
            let _ = writeln!(
                s,
                "<polyline class=\"series\" fill=\"none\" stroke=\"{}\"{dash} points=\"{}\"/>",
                line.color,
                coords.join(" ")
            );
            if dots {
                for (x, y) in run.iter().filter_map(|(x, y)| y.map(|y| (*x, y))) {
                    let _ = writeln!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"/>",
                        self.px(x),
                        self.py(y),
                        line.color
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(a: &Axis) -> Vec<f64> {
        a.ticks.iter().map(|(v, _)| *v).collect()
    }

    #[test]
    fn linear_ticks_are_round_and_cover_the_maximum() {
        let a = linear(147_781.0, "msg/s", |v, _| format!("{v}"));
        assert_eq!(values(&a), [0.0, 50e3, 100e3, 150e3]);
        let a = linear(3.004, "s", |v, _| format!("{v}"));
        assert_eq!(values(&a), [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(values(&linear(0.0, "", |v, _| format!("{v}"))).len(), 6);
    }

    #[test]
    fn log_ticks_are_decades_when_the_range_is_wide() {
        let a = log(180.0, 8260.0, "µs", |v| format!("{v}"));
        assert_eq!(values(&a), [100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0]);
        let a = log(90.0, 120_000.0, "µs", |v| format!("{v}"));
        assert_eq!(values(&a), [10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0]);
    }
}
