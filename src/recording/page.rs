//! The page `progjar record-page` writes: a recorded loop as pictures.
//!
//! One HTML file with inline SVG and a little CSS: no script, no network, so
//! it opens by double-click anywhere. Two pictures of the same lanes (one per
//! client): the whole recording on a time axis, where backpressure shows as
//! a shaded stretch of a slow reader's lane; and a window of consecutive
//! wake-ups, one column each, where one thread taking turns between clients
//! is plain to see. Sized for a 1280×800 screen; labels sit at fixed steps
//! far enough apart that none overlap.

use std::fmt::Write;

use super::census::{Lane, Lanes};
use super::picture::{Drawing, DrawnLane, Span, WINDOW};
use super::read::Reading;
use crate::svg::{self, escape, Axis};
use crate::units::{grouped, plural};

/// The SVG's width and the space for lane labels on its left.
const WIDTH: f64 = 1200.0;
const LEFT: f64 = 170.0;
const PLOT: f64 = WIDTH - LEFT - 20.0;
/// The pixel columns of the time axis, one sum of bytes each.
pub const COLUMNS: usize = PLOT as usize;
/// One lane's height.
const LANE: f64 = 28.0;

const READ_COLOR: &str = "#1f6fb4";
const WRITE_COLOR: &str = "#2a9d3a";
const PAUSE_COLOR: &str = "#f08a24";
const WAIT_COLOR: &str = "#d9a300";
const TAIL_COLOR: &str = "#9a9a9a";
const HANDSHAKE_COLOR: &str = "#8e44ad";

/// The whole page: the file's settings, its totals, the two pictures of the
/// drawn lanes, the table of the busiest connections and the file's notes.
pub fn render(r: &Reading, lanes: &Lanes, d: &Drawing, title: &str) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = escape(title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>progjar: the loop, recorded ({title})</title><style>{CSS}</style></head><body>\
         <h1>The loop, recorded: {title}</h1>\
         <p class=\"sub\">One thread, one <code>poll</code> loop. Each lane is one client; each \
         mark is a turn the loop gave it, bytes read above the line, bytes written back below. \
         Server settings: <code>{}</code></p>",
        escape(&r.settings)
    );
    if let Some(cut) = r.cut {
        let _ = write!(out, "<p class=\"note\">The recording is {}.</p>", cut.words());
    }
    summary(&mut out, r, lanes);
    out.push_str("<h2>The whole recording</h2>");
    overview(&mut out, d);
    idle_tail(&mut out, r, d);
    hidden_lanes(&mut out, lanes);
    legend(&mut out, lanes);
    out.push_str("<h2>One wake-up at a time</h2>");
    window(&mut out, d);
    out.push_str("<h2>Per connection</h2>");
    table(&mut out, lanes);
    notes(&mut out, r);
    out.push_str("</body></html>\n");
    out
}

const CSS: &str = "body{font:14px/1.4 sans-serif;margin:16px 24px;color:#222;max-width:1220px}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:18px 0 6px}\
.sub{margin:0 0 8px;color:#444}table{border-collapse:collapse}\
td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right}\
th:first-child,td:first-child{text-align:left}.note{color:#a33}\
.legend span{margin-right:18px;white-space:nowrap}\
.legend i{display:inline-block;width:14px;height:10px;margin-right:5px;vertical-align:middle}";

fn summary(out: &mut String, r: &Reading, lanes: &Lanes) {
    let all = &lanes.all;
    let _ = write!(
        out,
        "<table class=\"sum\"><tr><th>recorded</th><th>wake-ups</th><th>events</th>\
         <th>connections</th><th>bytes read</th><th>bytes written</th><th>reading paused</th></tr>\
         <tr><td>{} ms</td><td>{}</td><td>{}</td><td>{}</td><td>{} B</td><td>{} B</td>\
         <td>{} times</td></tr></table>",
        ms(r.end),
        grouped(r.wakes),
        grouped(r.events),
        grouped(all.connections),
        grouped(all.read),
        grouped(all.written),
        grouped(all.pauses)
    );
}

fn notes(out: &mut String, r: &Reading) {
    if r.left_out > 0 {
        let n = grouped(r.left_out);
        let _ = write!(out, "<p class=\"note\">{n} items were left out of over-long lines.</p>");
    }
    for note in &r.notes {
        let _ = write!(out, "<p class=\"note\">Note in the recording: {}</p>", escape(note));
    }
    if r.more_notes > 0 {
        let more = plural(r.more_notes, "more note");
        let _ = write!(out, "<p class=\"note\">... and {more} in the recording.</p>");
    }
}

/// The y of a lane's top: row 0 is the loop itself.
fn row_y(row: usize) -> f64 {
    8.0 + LANE * row as f64
}

/// Lane labels and lane lines, common to both pictures.
fn frame(out: &mut String, lanes: &[DrawnLane]) {
    let height = LANE * (lanes.len() as f64 + 1.0) + 56.0;
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    label(out, row_y(0), "the loop (1 thread)");
    for (i, lane) in lanes.iter().enumerate() {
        let y = row_y(i + 1);
        let _ = write!(
            out,
            "<rect x=\"{LEFT}\" y=\"{y}\" width=\"{PLOT}\" height=\"{LANE}\" fill=\"{}\"/>",
            if i % 2 == 0 { "#f6f6f6" } else { "#fff" }
        );
        label(out, y, &format!("client {} (token {})", grouped(lane.lane + 1), lane.key));
    }
}

/// The time axis under the lanes of both pictures.
fn axis(lanes: &[DrawnLane]) -> Axis {
    Axis { x0: LEFT, x1: LEFT + PLOT, y: row_y(lanes.len() + 1) }
}

fn label(out: &mut String, y: f64, text: &str) {
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        LEFT - 8.0,
        y + LANE / 2.0 + 4.0,
        escape(text)
    );
}

/// Microseconds to x positions, for the time axis.
#[derive(Clone, Copy)]
struct Scale {
    end: f64,
}

impl Scale {
    fn x(self, at: u64) -> f64 {
        LEFT + at as f64 / self.end * PLOT
    }
}

/// The whole recording on a time axis: bytes summed per pixel column.
fn overview(out: &mut String, d: &Drawing) {
    frame(out, &d.lanes);
    let scale = Scale { end: d.end as f64 };
    // The loop's row: a tick for every column in which it woke up.
    for c in (0..d.woke.len()).filter(|&c| d.woke[c]) {
        let (x, y, h) = (LEFT + c as f64, row_y(0) + 4.0, LANE - 8.0);
        let _ = write!(out, "<rect x=\"{x}\" y=\"{y}\" width=\"1\" height=\"{h}\" fill=\"#555\"/>");
    }
    let sums = d.lanes.iter().flat_map(|l| &l.columns);
    let peak = sums.map(|&(read, written)| read.max(written)).max().unwrap_or(0).max(1);
    for (i, lane) in d.lanes.iter().enumerate() {
        lane_states(out, lane, row_y(i + 1), scale);
        lane_bytes(out, &lane.columns, row_y(i + 1) + LANE / 2.0, peak);
    }
    let end_ms = scale.end / 1000.0;
    axis(&d.lanes).draw(out, end_ms, 10.0, "time since the loop first woke up (ms)");
    out.push_str("</svg>");
    let _ = write!(
        out,
        "<p>Bar heights grow with √bytes: a bar half a lane tall is {} B read (or written) within one \
         pixel's {} ms.</p>",
        grouped(peak),
        svg::label(end_ms / PLOT, svg::step(end_ms / PLOT, 1.0) / 100.0)
    );
}

/// The time after the last event, which the pictures leave out.
fn idle_tail(out: &mut String, r: &Reading, d: &Drawing) {
    if r.end > d.end {
        let _ = write!(
            out,
            "<p>After the last event, at {} ms, the loop only waited until the recording ended at \
             {} ms: that idle tail is left out of the picture.</p>",
            ms(d.end),
            ms(r.end)
        );
    }
}

/// A lane's life line, its backpressure pauses and its waits to write.
fn lane_states(out: &mut String, lane: &DrawnLane, y: f64, scale: Scale) {
    let shade = |out: &mut String, s: &Span, color: &str, top: f64, h: f64, opacity: f64| {
        let (x, w) = (scale.x(s.from), (scale.x(s.to) - scale.x(s.from)).max(1.0));
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{h}\" fill=\"{color}\" \
             fill-opacity=\"{opacity}\" stroke=\"{color}\" stroke-width=\"0.5\"/>"
        );
    };
    for s in &lane.paused {
        shade(out, s, PAUSE_COLOR, y + 1.0, LANE - 2.0, 0.35);
    }
    if let Some(s) = &lane.tail {
        shade(out, s, TAIL_COLOR, y + 1.0, LANE - 2.0, 0.25);
    }
    for s in &lane.waiting {
        shade(out, s, WAIT_COLOR, y + LANE - 4.0, 3.0, 1.0);
    }
    if let Some(s) = &lane.handshake {
        shade(out, s, HANDSHAKE_COLOR, y + 1.0, 3.0, 1.0);
    }
    let mid = y + LANE / 2.0;
    let (from, to) = (scale.x(lane.opened), scale.x(lane.closed));
    let _ = write!(
        out,
        "<line x1=\"{from:.1}\" y1=\"{mid}\" x2=\"{:.1}\" y2=\"{mid}\" stroke=\"#888\"/>",
        to.max(from + 1.0)
    );
}

/// A lane's bytes: read above its middle line, written below, √-scaled to `peak`.
fn lane_bytes(out: &mut String, columns: &[(u64, u64)], mid: f64, peak: u64) {
    let half = LANE / 2.0 - 3.0;
    let bar = |bytes: u64| ((bytes as f64 / peak as f64).sqrt() * half).max(1.0);
    for (c, &(read, written)) in columns.iter().enumerate() {
        let x = LEFT + c as f64;
        if read > 0 {
            let h = bar(read);
            let y = mid - h;
            let _ = write!(out, "<rect x=\"{x}\" y=\"{y:.1}\" width=\"2\" height=\"{h:.1}\" fill=\"{READ_COLOR}\"/>");
        }
        if written > 0 {
            let h = bar(written);
            let _ = write!(out, "<rect x=\"{x}\" y=\"{mid}\" width=\"2\" height=\"{h:.1}\" fill=\"{WRITE_COLOR}\"/>");
        }
    }
}

fn hidden_lanes(out: &mut String, lanes: &Lanes) {
    let all = lanes.all.connections;
    if all > lanes.drawn.len() as u64 {
        let _ = write!(
            out,
            "<p>The {} busiest of the {} (by bytes read and written back) are drawn; the table \
             lists the {} busiest.</p>",
            lanes.drawn.len(),
            plural(all, "connection"),
            lanes.rows.len()
        );
    }
}

fn legend(out: &mut String, lanes: &Lanes) {
    let handshake = if has_handshakes(lanes) {
        format!(
            "<span><i style=\"background:{HANDSHAKE_COLOR}\"></i>TLS handshake (bytes are TLS \
             records; a box so outlined is a handshake turn)</span>"
        )
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<p class=\"legend\"><span><i style=\"background:{READ_COLOR}\"></i>bytes read in a turn</span><span><i style=\"background:{WRITE_COLOR}\"></i>bytes written back</span>\
         <span><i style=\"background:{PAUSE_COLOR};opacity:.5\"></i>reading paused: backpressure \
         (it owes --max-pending bytes)</span><span><i style=\"background:{WAIT_COLOR}\"></i>waiting \
         to write (asks for WRITABLE)</span><span><i style=\"background:{TAIL_COLOR};opacity:.5\"></i>\
         client done sending, echo finishing</span>{handshake}</p>"
    );
}

/// Whether any connection listed had a TLS handshake (a TLS server's recording).
fn has_handshakes(lanes: &Lanes) -> bool {
    lanes.rows.iter().any(|l| l.handshake_done.is_some())
}

/// Consecutive wake-ups, one column each: which clients each one served.
fn window(out: &mut String, d: &Drawing) {
    frame(out, &d.lanes);
    let col = PLOT / WINDOW as f64;
    for c in 0..d.window.len() {
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"#555\"/>",
            LEFT + c as f64 * col + col * 0.35,
            row_y(0) + 4.0,
            col * 0.3,
            LANE - 8.0
        );
    }
    for i in 0..d.lanes.len() {
        let (y, bit) = (row_y(i + 1), 1u64 << i);
        for (c, marks) in d.window.iter().enumerate().filter(|(_, m)| m.turned & bit != 0) {
            let cx = LEFT + c as f64 * col + 2.0;
            let (w, half) = (col - 4.0, LANE / 2.0 - 2.0);
            if marks.read & bit != 0 {
                let _ = write!(out, "<rect x=\"{cx:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"{half}\" fill=\"{READ_COLOR}\"/>", y + 2.0);
            }
            if marks.written & bit != 0 {
                let _ = write!(out, "<rect x=\"{cx:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"{half}\" fill=\"{WRITE_COLOR}\"/>", y + LANE / 2.0);
            }
            // The outline last, over the halves: a handshake turn's shows.
            let (stroke, width) =
                if marks.handshake & bit != 0 { (HANDSHAKE_COLOR, 3) } else { ("#777", 1) };
            let _ = write!(out, "<rect x=\"{cx:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"{width}\"/>", y + 2.0, LANE - 4.0);
        }
    }
    let axis = axis(&d.lanes);
    axis.line(out);
    for (c, marks) in d.window.iter().enumerate().step_by(8) {
        axis.tick(out, LEFT + (c as f64 + 0.5) * col, &format!("#{}", grouped(marks.index + 1)));
    }
    let (from, to) = match (d.window.first(), d.window.last()) {
        (Some(a), Some(b)) => (ms(a.at), ms(b.at)),
        _ => ("0".into(), "0".into()),
    };
    let what =
        format!("wake-ups of the loop in order (number), {from} ms to {to} ms: a box is a turn");
    axis.title(out, &what);
    out.push_str("</svg>");
}

/// The busiest connections, one row each, and one line for all the others.
fn table(out: &mut String, lanes: &Lanes) {
    let tls = has_handshakes(lanes);
    out.push_str(
        "<table><tr><th>client</th><th>token</th><th>opened (ms)</th><th>closed (ms)</th>\
         <th>turns</th><th>read (B)</th><th>written (B)</th><th>most owed (B)</th>\
         <th>reading paused</th><th>longest pause (ms)</th>",
    );
    out.push_str(if tls { "<th>TLS handshake (ms)</th></tr>" } else { "</tr>" });
    for lane in &lanes.rows {
        row(out, lane, tls);
    }
    let rest = &lanes.rest;
    if rest.connections > 0 {
        let _ = write!(
            out,
            "<tr><td colspan=\"5\">... and {}, not listed</td><td>{}</td><td>{}</td>\
             <td></td><td>{} times</td><td></td></tr>",
            plural(rest.connections, "more connection"),
            grouped(rest.read),
            grouped(rest.written),
            grouped(rest.pauses)
        );
    }
    out.push_str("</table>");
}

fn row(out: &mut String, lane: &Lane, tls: bool) {
    let closed = lane.closed.map_or("open".to_string(), ms);
    let handshake = match (tls, lane.handshake_done) {
        (false, _) => String::new(),
        (true, Some(done)) => format!("<td>{}</td>", ms(done.saturating_sub(lane.opened))),
        (true, None) => "<td></td>".to_string(),
    };
    let _ = write!(
        out,
        "<tr><td>client {}</td><td>{}</td><td>{}</td><td>{closed}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{} times</td><td>{}</td>{handshake}</tr>",
        grouped(lane.lane + 1),
        lane.key,
        ms(lane.opened),
        grouped(lane.turns),
        grouped(lane.read),
        grouped(lane.written),
        grouped(lane.max_owed),
        grouped(lane.pauses),
        ms(lane.longest_pause)
    );
}

/// µs as milliseconds with one decimal, e.g. `12.5`.
fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}
