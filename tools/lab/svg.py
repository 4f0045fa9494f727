"""The page kit of progjar's src/svg.rs, for the lab's page (report.py): escaping, the
1-2-5 axis step and its labels, and a time axis with ticks.

The same rules as the Rust kit, which the stress report and the recorded-loop page
use; tests/svg.rs runs both on the same inputs and checks that they agree, character
for character. Change one, change the other.
"""

import math

MULTIPLES = (1.0, 2.0, 5.0)  # an axis steps by 1, 2 or 5 times a power of ten
FINEST = 1e-3  # the finest step, so that an empty span still has an axis


def escape(text):
    """Text as HTML (and SVG) shows it: & < > and both quotes as entities."""
    entities = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
    return "".join(entities.get(c, c) for c in str(text))


def step(span, most):
    """The smallest step of 1, 2 or 5 x 10^n that cuts span into at most `most` pieces."""
    rough = span / most
    if not (math.isfinite(rough) and rough > FINEST):
        rough = FINEST
    power = math.pow(10.0, math.floor(math.log10(rough)))
    # A hair of slack, so that a rounding error in `rough` picks no coarser step.
    return next((m * power for m in MULTIPLES if m * power >= rough * (1.0 - 1e-9)), 10.0 * power)


def decimals(step):
    """The decimals a value needs to be told apart from its neighbours `step` away."""
    return 0 if step >= 1.0 else math.ceil(-math.log10(step) - 1e-9)


def label(value, step):
    """A tick's label: value with as many decimals as step needs."""
    return f"{value:.{decimals(step)}f}"


def ticks(span, step):
    """The multiples of step from 0 up to span."""
    out, i = [], 0
    while i * step <= span + step * 1e-9:
        out.append(i * step)
        i += 1
    return out


class Axis:
    """A horizontal axis: its line from x0 to x1 at height y."""

    def __init__(self, x0, x1, y):
        self.x0, self.x1, self.y = float(x0), float(x1), float(y)

    def draw(self, span, most, title):
        """The line, ticks every 1-2-5 step (at most `most` steps) from 0 to span with
        their labels, and the title under them."""
        parts = [self.line()]
        s = step(span, most)
        span = span if span > 0.0 else s
        for value in ticks(span, s):
            parts.append(self.tick(self.x0 + value / span * (self.x1 - self.x0), label(value, s)))
        parts.append(self.title(title))
        return "".join(parts)

    def line(self):
        x0, x1, y = self.x0, self.x1, self.y
        return f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="#444"/>'

    def tick(self, x, text):
        y, down, under = self.y, self.y + 5.0, self.y + 18.0
        return (
            f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{down:.1f}" stroke="#444"/>'
            f'<text x="{x:.1f}" y="{under:.1f}" text-anchor="middle">{escape(text)}</text>'
        )

    def title(self, text):
        x, y = (self.x0 + self.x1) / 2.0, self.y + 38.0
        return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">{escape(text)}</text>'
