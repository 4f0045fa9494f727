//! The small kit every page the tools write is drawn with (HTML with inline
//! SVG): escaping, the 1-2-5 axis step and its labels, and a time axis with
//! ticks.
//!
//! Three pages use it: `progjar-stress --report` (`tools/stress/src/chart.rs`
//! and `html.rs`), the recorded loop (`recording/page.rs`) and the lab's page,
//! whose Python side (`tools/lab/svg.py`) follows the same rules, written once
//! more in Python; `tests/svg.rs` runs both on the same inputs and checks that
//! they agree, character for character.

use std::fmt::Write as _;

/// The multiples of a power of ten an axis steps by: 1, 2 or 5 × 10ⁿ.
pub const MULTIPLES: [f64; 3] = [1.0, 2.0, 5.0];

/// The finest step [`step`] gives, so that an empty span still has an axis.
pub const FINEST: f64 = 1e-3;

/// Text as HTML (and SVG) shows it: `&`, `<`, `>` and both quotes as
/// entities, so any text (an error message, a file name) is safe in an
/// element or an attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The smallest step of 1, 2 or 5 × 10ⁿ that cuts `span` into at most `most`
/// pieces (at least [`FINEST`]).
pub fn step(span: f64, most: f64) -> f64 {
    let rough = span / most;
    let rough = if rough.is_finite() && rough > FINEST { rough } else { FINEST };
    let power = 10f64.powf(rough.log10().floor());
    // A hair of slack, so that a rounding error in `rough` picks no coarser step.
    let enough = |s: &f64| *s >= rough * (1.0 - 1e-9);
    MULTIPLES.iter().map(|m| m * power).find(enough).unwrap_or(10.0 * power)
}

/// The decimals a value needs to be told apart from its neighbours `step`
/// away: none for steps of 1 or more, one for 0.1 to 0.5, and so on.
pub fn decimals(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else {
        (-step.log10() - 1e-9).ceil() as usize
    }
}

/// A tick's label: `value` with as many decimals as `step` needs.
pub fn label(value: f64, step: f64) -> String {
    format!("{value:.*}", decimals(step))
}

/// The multiples of `step` from 0 up to `span`.
pub fn ticks(span: f64, step: f64) -> Vec<f64> {
    (0u32..).map(|i| f64::from(i) * step).take_while(|v| *v <= span + step * 1e-9).collect()
}

/// A horizontal axis: its line from `x0` to `x1` at height `y`.
#[derive(Debug, Clone, Copy)]
pub struct Axis {
    /// Where it starts (the value 0), px.
    pub x0: f64,
    /// Where it ends (the value `span`), px.
    pub x1: f64,
    /// Its height, px.
    pub y: f64,
}

impl Axis {
    /// The line, ticks every 1-2-5 step (at most `most` steps) from 0 to
    /// `span` with their labels, and the `title` under them.
    pub fn draw(self, out: &mut String, span: f64, most: f64, title: &str) {
        self.line(out);
        let step = step(span, most);
        let span = if span > 0.0 { span } else { step };
        for value in ticks(span, step) {
            self.tick(out, self.x0 + value / span * (self.x1 - self.x0), &label(value, step));
        }
        self.title(out, title);
    }

    /// The axis line alone.
    pub fn line(self, out: &mut String) {
        let Axis { x0, x1, y } = self;
        let _ = write!(
            out,
            "<line x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{x1:.1}\" y2=\"{y:.1}\" stroke=\"#444\"/>"
        );
    }

    /// A tick at `x` with its label under it.
    pub fn tick(self, out: &mut String, x: f64, label: &str) {
        let (y, down, under) = (self.y, self.y + 5.0, self.y + 18.0);
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{down:.1}\" stroke=\"#444\"/>\
             <text x=\"{x:.1}\" y=\"{under:.1}\" text-anchor=\"middle\">{}</text>",
            escape(label)
        );
    }

    /// The axis's title, under its tick labels.
    pub fn title(self, out: &mut String, title: &str) {
        let (x, y) = ((self.x0 + self.x1) / 2.0, self.y + 38.0);
        let _ = write!(
            out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\">{}</text>",
            escape(title)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_both_quotes() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn steps_are_1_2_5_and_never_too_many() {
        assert_eq!(step(147_781.0, 5.0), 50_000.0);
        assert_eq!(step(3.004, 5.0), 1.0);
        assert_eq!(step(100.0, 10.0), 10.0);
        assert_eq!(step(0.0, 10.0), FINEST);
        assert_eq!(step(f64::NAN, 10.0), FINEST);
        for span in [0.7, 3.0, 9.99, 42.0, 1234.5, 7e6] {
            let s = step(span, 6.0);
            assert!(span / s <= 6.0 + 1e-9 && span / s > 6.0 / 5.0, "{span}: {s}");
        }
    }

    #[test]
    fn labels_have_the_decimals_their_step_needs() {
        assert_eq!(label(3.0, 0.5), "3.0");
        assert_eq!(label(0.25, 0.05), "0.25");
        assert_eq!(label(150.0, 50.0), "150");
        assert_eq!(ticks(2.0, 0.5), [0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(ticks(0.3, 0.1).len(), 4, "0.1 × 3 is a hair over 0.3");
    }
}
