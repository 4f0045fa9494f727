//! The `--report FILE.html` page: the run as pictures a person looks at.
//!
//! One self-contained file (inline CSS and SVG, no script, no link to anything)
//! that any browser opens by double-click, also on a machine with no network:
//! throughput and latency over time with the phases of the run shaded, the
//! latency distribution as HdrHistogram's percentile spectrum beside the text
//! summary, and every error kept.
//!
//! [`render`] reads only the summary data in a [`Page`] (counts as text, the
//! latency histogram, the timeline, the errors), never the live run, so a
//! summary put together another way (runs merged from several machines) gives
//! the same page. The charts themselves are drawn by `chart.rs`.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::chart::{self, Axis, Band, Chart, Line, Scale};
use crate::report::Verdict;
use crate::stats::{unlisted, ErrorGroup, Second, Timeline};
use progjar::svg::{self, escape};
use progjar::units;

/// Width of the charts over time: fills a 1280-px window with the page's margins.
const WIDE: f64 = 1180.0;
/// Height of each chart over time: three fit under the header in 800 px.
const HIGH: f64 = 190.0;

/// Everything the page shows; all of it is in the run's summary.
pub struct Page<'a> {
    /// What ran, in one line (target, connections, sizes): the page's heading.
    pub title: &'a str,
    /// The text summary as `progjar-stress` prints it; shown word for word.
    pub summary: &'a str,
    /// The verdict: OK, INCOMPLETE or FAILED.
    pub result: Verdict,
    /// Every message's latency in µs.
    pub latency: &'a Histogram<u64>,
    /// The run second by second, and its phases.
    pub timeline: &'a Timeline,
    /// Each kind of error kept word for word, with its count.
    pub errors: &'a [ErrorGroup],
    /// All errors, kept or only counted.
    pub error_count: u64,
}

/// The page as one HTML document.
///
/// For runs merged from several machines, fill the [`Page`] from the merged
/// summary: the latency histograms added (`Histogram::add`), the merged text
/// summary, the errors joined, and the timelines added second by second (counts
/// summed; a second's percentiles cannot be summed, so the highest of the
/// machines' is a fair upper bound).
pub fn render(page: &Page) -> String {
    let mut s = String::with_capacity(64 * 1024);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>progjar-stress: {}</title>\n<link rel=\"icon\" href=\"data:,\">\n\
         <style>{STYLE}</style>\n</head>\n<body>\n",
        escape(page.title)
    );
    header(&mut s, page);
    over_time(&mut s, page.timeline);
    distribution(&mut s, page);
    errors(&mut s, page);
    s.push_str(FOOTER);
    s.push_str("</body>\n</html>\n");
    s
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; color: #222; max-width: 1200px; margin: 0 auto; padding: 8px 20px 24px; }
h1 { font-size: 20px; margin: 6px 0 2px; }
h2 { font-size: 16px; margin: 18px 0 4px; border-bottom: 1px solid #ddd; }
h3 { font-size: 14px; margin: 8px 0 0; font-weight: 600; }
.ok { color: #fff; background: #2a7d2a; padding: 1px 8px; border-radius: 3px; }
.failed { color: #fff; background: #b3261e; padding: 1px 8px; border-radius: 3px; }
.incomplete { color: #222; background: #f2c94c; padding: 1px 8px; border-radius: 3px; }
.key { display: inline-block; width: 18px; height: 4px; margin: 0 4px 3px 14px; vertical-align: middle; }
.key.dashed { background: repeating-linear-gradient(90deg, currentColor 0 6px, transparent 6px 10px) !important; }
.swatch { display: inline-block; width: 14px; height: 12px; margin: 0 4px -1px 12px; border: 1px solid #bbb; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-size: 12px; fill: #333; }
svg .title { font-size: 13px; fill: #111; }
svg .band-label { fill: #555; font-style: italic; }
svg .grid { stroke: #e6e6e6; }
svg .frame { fill: none; stroke: #999; }
svg .phase { stroke: #8a7a5a; stroke-dasharray: 3 3; }
svg .series { stroke-width: 2; stroke-linejoin: round; }
.side { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
.side > div { flex: 1; min-width: 420px; }
pre { font-size: 12px; background: #f6f6f6; padding: 8px; margin: 6px 0; white-space: pre-wrap; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: 2px 12px 2px 0; text-align: right; }
th { text-align: left; font-weight: 600; }
li { font-family: monospace; font-size: 12px; }
.note { color: #555; font-size: 13px; }
";

const FOOTER: &str = "<p class=\"note\">One point per second of the run (the numbers of the \
live line), drawn in the middle of its second. The part-second before the end, when there is \
one, is a hollow dot apart from the line: its rates are per second too, but it is only the \
drain, where no new message starts. Latency: from the <code>write()</code> of a message's \
first byte to the arrival of its last echoed byte. Made by \
<code>progjar-stress --report</code>.</p>\n";

/// A phase of the run: its name, where it starts and ends (s), its shade.
struct Phase {
    name: &'static str,
    from: f64,
    to: f64,
    fill: &'static str,
}

/// A phase shorter than this (it would read `2.00–2.00 s`) is not shown: its
/// time goes to the phase before it.
const SHORTEST_PHASE: f64 = 0.005;

/// The phases the run went through, in order (see [`Timeline`]), each at
/// least [`SHORTEST_PHASE`] long but the first.
fn phases(t: &Timeline) -> Vec<Phase> {
    let drain = t.drain_at.map(|d| d.min(t.end_at));
    let steady = t.steady_at.map(|s| s.min(drain.unwrap_or(t.end_at)));
    let mut all = vec![Phase {
        name: "ramp-up",
        from: 0.0,
        to: steady.or(drain).unwrap_or(t.end_at),
        fill: "#fbe3c4",
    }];
    if let Some(s) = steady {
        all.push(Phase { name: "steady", from: s, to: drain.unwrap_or(t.end_at), fill: "#ffffff" });
    }
    if let Some(d) = drain {
        all.push(Phase { name: "drain", from: d, to: t.end_at, fill: "#dde3f0" });
    }
    let mut out: Vec<Phase> = Vec::new();
    for phase in all {
        let first = out.len() == 1;
        match out.last_mut() {
            Some(last) if phase.to - phase.from < SHORTEST_PHASE => last.to = phase.to,
            // A first phase too short to see gives way to the next.
            Some(last) if first && last.to - last.from < SHORTEST_PHASE => {
                *last = Phase { from: 0.0, ..phase }
            }
            _ => out.push(phase),
        }
    }
    out
}

/// The heading, the result, and the phases in figures.
fn header(s: &mut String, page: &Page) {
    let (class, word) = match page.result {
        Verdict::Ok => ("ok", "OK"),
        Verdict::Incomplete => ("incomplete", "INCOMPLETE"),
        Verdict::Failed => ("failed", "FAILED"),
    };
    let _ = writeln!(
        s,
        "<h1>progjar-stress: {}</h1>\n<p><span class=\"{class}\">{word}</span> &nbsp;{} &nbsp;·&nbsp; phases:",
        escape(page.title),
        units::plural(page.error_count, "error")
    );
    for p in phases(page.timeline) {
        let _ = write!(
            s,
            "<span class=\"swatch\" style=\"background:{}\"></span>{} {:.2}–{:.2} s",
            p.fill, p.name, p.from, p.to
        );
    }
    s.push_str("</p>\n");
}

/// A legend line: the chart's name and one colour key per line.
fn legend(s: &mut String, title: &str, keys: &[(&str, &Line)]) {
    let _ = write!(s, "<h3>{title}");
    for (name, line) in keys {
        let dashed = if line.dashed { " dashed" } else { "" };
        let _ = write!(
            s,
            "<span class=\"key{dashed}\" style=\"background:{0};color:{0}\"></span>{name}",
            line.color
        );
    }
    s.push_str("</h3>\n");
}

/// Messages/s, Gbit/s and latency, one point per second, phases shaded
/// (named in the first chart only: the three share their time axis).
fn over_time(s: &mut String, t: &Timeline) {
    s.push_str("<h2>Over time</h2>\n");
    let msgs = Line {
        points: per_second(t, |p| Some(p.messages as f64 / p.secs)),
        color: "#1f5fbf",
        dashed: false,
    };
    legend(s, "Throughput: messages per second", &[("verified echoes", &msgs)]);
    let y = chart::linear(highest(&[&msgs]), "messages/s", si);
    s.push_str(&time_chart(t, y).svg("messages per second", &bands(t, true), &[msgs]));

    let gbit = |bytes: u64, secs: f64| Some(bytes as f64 * 8.0 / secs / 1e9);
    let received = Line {
        points: per_second(t, |p| gbit(p.bytes_received, p.secs)),
        color: "#2a8a3a",
        dashed: false,
    };
    let sent = Line {
        points: per_second(t, |p| gbit(p.bytes_sent, p.secs)),
        color: "#e07b00",
        dashed: true,
    };
    legend(
        s,
        "Throughput: Gbit/s of payload",
        &[("received, checked", &received), ("sent", &sent)],
    );
    let y = chart::linear(highest(&[&received, &sent]), "Gbit/s", svg::label);
    s.push_str(&time_chart(t, y).svg("Gbit/s", &bands(t, false), &[received, sent]));

    let latency = |f: fn(&Second) -> Option<u64>, color, dashed| Line {
        points: per_second(t, |p| f(p).map(|v| v.max(1) as f64)),
        color,
        dashed,
    };
    let p50 = latency(|p| p.p50_us, "#1f5fbf", false);
    let p99 = latency(|p| p.p99_us, "#c62828", false);
    let max = latency(|p| p.max_us, "#777777", true);
    let lowest = p50.points.iter().filter_map(|p| p.1).fold(f64::MAX, f64::min);
    let top = highest(&[&max]).max(1.0);
    legend(s, "Latency of each second's messages", &[("p50", &p50), ("p99", &p99), ("max", &max)]);
    let y = chart::log(lowest.min(top), top, "latency (log scale)", short_us);
    s.push_str(&time_chart(t, y).svg("latency per second", &bands(t, false), &[p50, p99, max]));
}

/// A chart over the run's time with the y axis `y`.
fn time_chart(t: &Timeline, y: Axis) -> Chart {
    let x = chart::linear_to(t.end_at, "time since the start (s)", svg::label);
    Chart { width: WIDE, height: HIGH, x, y }
}

/// The phases as shaded bands, `named` or not.
fn bands(t: &Timeline, named: bool) -> Vec<Band> {
    let band =
        |p: Phase| Band { from: p.from, to: p.to, fill: p.fill, label: named.then_some(p.name) };
    phases(t).into_iter().map(band).collect()
}

/// A last window shorter than this is a part-second: drawn apart.
const PART_SECOND: f64 = 0.99;

/// `f` of each second, placed in the middle of it. A last part-second (the
/// drain, where no new message starts) is cut off from the line, so that its
/// lower rates do not draw as a collapse; the chart shows it as a lone point.
fn per_second(t: &Timeline, f: impl Fn(&Second) -> Option<f64>) -> Vec<(f64, Option<f64>)> {
    let mut points: Vec<(f64, Option<f64>)> =
        t.seconds.iter().map(|p| (p.at - p.secs / 2.0, f(p))).collect();
    let part = t.seconds.last().is_some_and(|p| p.secs < PART_SECOND);
    if part && points.len() > 1 {
        let (x, _) = points[points.len() - 1];
        points.insert(points.len() - 1, (x, None));
    }
    points
}

/// The highest point of some lines (0 when they have none).
fn highest(lines: &[&Line]) -> f64 {
    lines.iter().flat_map(|l| l.points.iter().filter_map(|p| p.1)).fold(0.0, f64::max)
}

/// The percentiles the table lists, as (label, quantile).
const PERCENTILES: [(&str, f64); 6] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
    ("p99.999", 0.99999),
];

/// The percentile spectrum, and beside it the text summary and the percentiles.
fn distribution(s: &mut String, page: &Page) {
    let h = page.latency;
    s.push_str("<h2>Latency distribution</h2>\n<div class=\"side\">\n<div>\n");
    s.push_str(&spectrum(h));
    s.push_str(
        "<p class=\"note\">HdrHistogram's percentile spectrum: how slow the slowest 10 %, \
         1 %, 0.1 % … of the messages were. Each step right is ten times rarer.</p>\n</div>\n<div>\n",
    );
    let _ = writeln!(s, "<h3>Summary</h3>\n<pre>{}</pre>", escape(page.summary));
    if h.is_empty() {
        s.push_str("<p>No message completed.</p>\n");
    } else {
        s.push_str(
            "<table>\n<tr><th>percentile</th><th>latency, µs</th><th>latency, rounded</th></tr>\n",
        );
        let rows = PERCENTILES.iter().map(|(name, q)| (*name, h.value_at_quantile(*q)));
        for (name, us) in rows.chain([("max", h.max())]) {
            let _ = writeln!(
                s,
                "<tr><th>{name}</th><td class=\"us\">{} µs</td><td>{}</td></tr>",
                units::grouped(us),
                units::micros(us)
            );
        }
        let _ = writeln!(
            s,
            "</table>\n<p class=\"note\">{} measured.</p>",
            units::plural(h.len(), "message")
        );
    }
    s.push_str("</div>\n</div>\n");
}

/// Latency against percentile, the percentile on a log axis of 1 / (1 − q)
/// from 0 % to 99.999 %, as HdrHistogram plots it.
fn spectrum(h: &Histogram<u64>) -> String {
    const LAST: f64 = 1e5;
    let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
    let ticks = labels.iter().enumerate().map(|(i, l)| (10f64.powi(i as i32), l.to_string()));
    let x = Axis {
        scale: Scale::Log { lo: 1.0, hi: LAST },
        ticks: ticks.collect(),
        title: "percentile (log scale)".to_string(),
    };
    let mut points: Vec<(f64, Option<f64>)> = Vec::new();
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let x = 1.0 / (1.0 - v.quantile_iterated_to());
            if x >= LAST {
                break;
            }
            points.push((x, Some(v.value_iterated_to() as f64)));
        }
        points.push((LAST, Some(h.value_at_quantile(0.99999) as f64)));
    }
    let top = points.iter().filter_map(|p| p.1).fold(0.0, f64::max);
    let (unit, divisor) = unit_for(top);
    let y = chart::linear(top, &format!("latency ({unit})"), |v, step| {
        svg::label(v / divisor, step / divisor)
    });
    let line = Line { points, color: "#c62828", dashed: false };
    Chart { width: 560.0, height: 340.0, x, y }.svg("latency by percentile", &[], &[line])
}

/// Every error kept, and how many more there were.
fn errors(s: &mut String, page: &Page) {
    let _ = writeln!(s, "<h2>Errors: {}</h2>", units::grouped(page.error_count));
    if page.error_count == 0 {
        s.push_str("<p>None: every byte came back right and every connection worked.</p>\n");
        return;
    }
    s.push_str("<ol>\n");
    for e in page.errors {
        let _ = writeln!(s, "<li>{}</li>", escape(&e.to_string()));
    }
    s.push_str("</ol>\n");
    let more = unlisted(page.errors, page.error_count);
    if more > 0 {
        let _ = writeln!(
            s,
            "<p>… and {} of other kinds (the first {} kinds are kept word for word, the rest counted).</p>",
            units::plural(more, "more error"),
            page.errors.len()
        );
    }
}

/// The unit a linear latency axis up to `top` µs reads best in, and its size in µs.
fn unit_for(top: f64) -> (&'static str, f64) {
    if top >= 2e6 {
        ("s", 1e6)
    } else if top >= 2e3 {
        ("ms", 1e3)
    } else {
        ("µs", 1.0)
    }
}

/// A tick value with `k` or `M` when the step is that large: `150k`, `1.5M`.
fn si(v: f64, step: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if step >= 1e5 {
        format!("{}M", svg::label(v / 1e6, step / 1e6))
    } else if step >= 1e3 {
        format!("{}k", svg::label(v / 1e3, step / 1e3))
    } else {
        svg::label(v, step)
    }
}

/// A log-axis tick (a 1-2-5 value in µs) in its shortest form: `500 µs`, `2 ms`, `1 s`.
fn short_us(us: f64) -> String {
    if us < 1e3 {
        format!("{us} µs")
    } else if us < 1e6 {
        format!("{} ms", us / 1e3)
    } else {
        format!("{} s", us / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page from summary data alone, as `merge` would have it: no run behind it.
    #[test]
    fn renders_from_summary_data_alone() {
        let mut latency = Histogram::<u64>::new(3).expect("histogram");
        for us in 1..=1000 {
            latency.record(us).expect("in range");
        }
        let second = |at: f64, p99| Second {
            at,
            secs: 1.0,
            messages: 500,
            bytes_sent: 256_000,
            bytes_received: 256_000,
            p50_us: Some(500),
            p99_us: Some(p99),
            max_us: Some(1000),
            open: 10,
            errors: 0,
        };
        let timeline = Timeline {
            seconds: vec![second(1.0, 990), second(2.0, 980)],
            steady_at: Some(0.2),
            drain_at: Some(2.0),
            end_at: 2.1,
        };
        let errors = [ErrorGroup {
            message: "<bad> & worse".to_string(),
            count: 1,
            connections: vec![3],
            file: None,
        }];
        let page = Page {
            title: "10 connections to two machines",
            summary: "messages:    1,000 verified",
            result: Verdict::Failed,
            latency: &latency,
            timeline: &timeline,
            errors: &errors,
            error_count: 4,
        };
        let html = render(&page);
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(html.contains("<th>p99</th><td class=\"us\">990 µs</td>"));
        assert!(html.contains("<th>max</th><td class=\"us\">1,000 µs</td><td>1.00 ms</td>"));
        assert!(html.contains("<li>connection 3: &lt;bad&gt; &amp; worse</li>"));
        assert!(html.contains("… and 3 more errors of other kinds"));
        assert!(html.contains("ramp-up 0.00–0.20 s") && html.contains("drain 2.00–2.10 s"));
        assert!(html.contains("messages:    1,000 verified") && html.contains("FAILED"));
    }

    /// Issue 15, point 12: the table says what each column is.
    #[test]
    fn both_latency_columns_are_labelled() {
        let mut latency = Histogram::<u64>::new(3).expect("histogram");
        latency.record(1234).expect("in range");
        let mut s = String::new();
        let timeline = Timeline::default();
        let page = Page {
            title: "t",
            summary: "",
            result: Verdict::Ok,
            latency: &latency,
            timeline: &timeline,
            errors: &[],
            error_count: 0,
        };
        distribution(&mut s, &page);
        assert!(
            s.contains("<tr><th>percentile</th><th>latency, µs</th><th>latency, rounded</th></tr>"),
            "{s}"
        );
    }

    /// A timeline of `n` whole seconds and a last part-second of `part` s.
    fn timeline_with_part_second(n: usize, part: f64) -> Timeline {
        let mut seconds: Vec<Second> = (1..=n)
            .map(|i| Second { at: i as f64, secs: 1.0, messages: 40_000, ..Second::default() })
            .collect();
        let end = n as f64 + part;
        seconds.push(Second { at: end, secs: part, messages: 10, ..Second::default() });
        Timeline { seconds, steady_at: Some(0.001), drain_at: Some(n as f64), end_at: end }
    }

    /// Issue 15, point 12: a drain that lasted a millisecond is no phase of
    /// its own (it would read `drain 3.00–3.00 s`), and a ramp-up that short neither.
    #[test]
    fn a_phase_too_short_to_see_is_not_shown() {
        let t = timeline_with_part_second(3, 0.001);
        let shown: Vec<(&str, String)> =
            phases(&t).iter().map(|p| (p.name, format!("{:.3}–{:.3}", p.from, p.to))).collect();
        assert_eq!(shown, [("steady", "0.000–3.001".to_string())]);
        let long = timeline_with_part_second(3, 0.4);
        let names: Vec<&str> = phases(&long).iter().map(|p| p.name).collect();
        assert_eq!(names, ["steady", "drain"]);
    }

    /// Issue 15, point 12: the last part-second (10 messages in 1 ms: a rate
    /// of 10,000/s after 40,000/s) is not joined to the line as a collapse;
    /// it is a point apart.
    #[test]
    fn the_last_part_second_is_drawn_apart_from_the_line() {
        let t = timeline_with_part_second(3, 0.001);
        let points = per_second(&t, |p| Some(p.messages as f64 / p.secs));
        let ys: Vec<Option<f64>> = points.iter().map(|p| p.1).collect();
        assert_eq!(ys, [Some(40e3), Some(40e3), Some(40e3), None, Some(10e3)]);
        let y = chart::linear(40e3, "messages/s", si);
        let line = Line { points, color: "#000", dashed: false };
        let svg = time_chart(&t, y).svg("m", &[], &[line]);
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("class=\"apart\"").count(), 1, "{svg}");
        // Whole seconds only: nothing apart.
        let whole = Timeline { seconds: t.seconds[..3].to_vec(), ..t.clone() };
        assert!(per_second(&whole, |p| Some(p.secs)).iter().all(|p| p.1.is_some()));
    }

    #[test]
    fn tick_labels() {
        assert_eq!(si(150_000.0, 50_000.0), "150k");
        assert_eq!(si(1_500_000.0, 500_000.0), "1.5M");
        assert_eq!(short_us(2_000.0), "2 ms");
        assert_eq!(short_us(500.0), "500 µs");
    }
}
