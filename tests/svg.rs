//! The pages' kit and its Python twin agree: `progjar::svg` (the stress report
//! and the recorded loop) and `tools/lab/svg.py` (the lab's page) escape the
//! same way, pick the same 1-2-5 steps and write the same axes, character for
//! character, on the same inputs. Needs python3.

use std::path::Path;
use std::process::Command;

use progjar::svg::{self, Axis};
use progjar_testkit as common;

/// Texts with every character the escape must change, and some it must not.
const TEXTS: [&str; 5] = ["<>&\"'", "a<b>&c", "plain", "µs ü 'x'", "&amp; twice"];

/// Spans over many decades, with the edges of each 1-2-5 step and the odd ones.
fn spans() -> Vec<f64> {
    let mantissas = [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.99, 5.0, 6.0, 7.3, 9.99, 10.0];
    let mut spans: Vec<f64> = (-5..=8).flat_map(|e| mantissas.map(|m| m * 10f64.powi(e))).collect();
    spans.extend([0.0, -3.0, 0.3, 0.7, 100.05, 147_781.0, 3.004, f64::NAN, f64::INFINITY]);
    spans
}

/// The pieces to count a span in: the pages use 1, 5, 6 and 10.
const MOST: [f64; 4] = [1.0, 5.0, 6.0, 10.0];

/// Python's output for the same cases, one line each.
fn python(spans: &[f64]) -> Vec<String> {
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/lab");
    let floats = |v: &[f64]| v.iter().map(|s| format!("float('{s:?}')")).collect::<Vec<_>>();
    let program = format!(
        "import sys\nsys.path.insert(0, {lab:?})\nimport svg\n\
         for t in {texts:?}:\n    print(svg.escape(t))\n\
         for span in [{spans}]:\n    for most in [{most}]:\n        s = svg.step(span, most)\n\
         \x20       print(repr(s), svg.decimals(s), svg.label(span, s) if span == span else '-')\n\
         for span in [0.0, 2.0, 0.3, 61.5, 1234.5]:\n\
         \x20   print(svg.Axis(150, 876, 206).draw(span, 6, 'time <ms> & \"more\"'))\n\
         a = svg.Axis(170, 1180, 64.5)\nprint(a.line() + a.tick(175.25, '#1,024') + a.title('wake-ups'))\n",
        lab = lab.to_string_lossy(),
        texts = TEXTS,
        spans = floats(spans).join(", "),
        most = floats(&MOST).join(", "),
    );
    let out = common::run(Command::new("python3").arg("-"), Some(program.into_bytes()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python3 failed: {stderr}");
    String::from_utf8(out.stdout).expect("text").lines().map(str::to_string).collect()
}

#[test]
fn the_rust_kit_and_the_python_kit_agree() {
    let spans = spans();
    let python = python(&spans);
    let mut lines = python.iter();
    let mut next = || lines.next().cloned().expect("python printed fewer lines");
    for text in TEXTS {
        assert_eq!(next(), svg::escape(text), "escape of {text:?}");
    }
    for &span in &spans {
        for most in MOST {
            let s = svg::step(span, most);
            let line = next();
            let words: Vec<&str> = line.split(' ').collect();
            let theirs: f64 = words[0].parse().expect("a float");
            assert_eq!(theirs.to_bits(), s.to_bits(), "step({span:?}, {most}): {line}");
            assert_eq!(words[1], svg::decimals(s).to_string(), "decimals({s:?}): {line}");
            let label = if span.is_nan() { "-".to_string() } else { svg::label(span, s) };
            assert_eq!(words[2..].join(" "), label, "label({span:?}, {s:?})");
        }
    }
    for span in [0.0, 2.0, 0.3, 61.5, 1234.5] {
        let mut ours = String::new();
        Axis { x0: 150.0, x1: 876.0, y: 206.0 }.draw(&mut ours, span, 6.0, "time <ms> & \"more\"");
        assert_eq!(next(), ours, "the axis of a span of {span}");
    }
    let a = Axis { x0: 170.0, x1: 1180.0, y: 64.5 };
    let mut ours = String::new();
    a.line(&mut ours);
    a.tick(&mut ours, 175.25, "#1,024");
    a.title(&mut ours, "wake-ups");
    assert_eq!(next(), ours);
    assert!(lines.next().is_none(), "python printed more lines");
}
