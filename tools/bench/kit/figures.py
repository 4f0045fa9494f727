"""Figures over the rounds of a table: `results[(row key, server)]` is a list of runs, one a
round, each a dict; a figure is the median over the rounds, a ratio (progjar ÷ tokio) the
median of each round's ratio; a target row says whether a figure met what was needed."""

import statistics

from kit.report import fmt_int, fmt_ratio


def value(r, path):
    for p in path:
        r = r.get(p) if isinstance(r, dict) else None
    return r if isinstance(r, (int, float)) else None


def paired(results, key, *path, ours="progjar", ref="tokio"):
    """progjar ÷ tokio (or `ours` ÷ `ref`): the median over the rounds of each round's ratio. The
    two servers of a round ran one right after the other, so each ratio sees the same machine; a
    ratio of the two medians would mix rounds run minutes apart."""
    ps, ts = results.get((key, ours), []), results.get((key, ref), [])
    rs = [value(p, path) / value(t, path) for p, t in zip(ps, ts) if value(p, path) is not None and value(t, path)]
    return statistics.median(rs) if rs else None


def get(results, key, name, *path):
    """The median over the rounds of one figure of one run (None if no round has it)."""
    vals = [v for v in (value(r, path) for r in results.get((key, name), [])) if v is not None]
    return statistics.median(vals) if vals else None


def target(results, label, key, path, needed, test, fmt=fmt_int):
    """One row of a Targets table: progjar, tokio, their ratio, what was needed, PASS or MISS.
    `test(progjar's figure, the paired ratio)` says whether the target is met."""
    p, t = get(results, key, "progjar", *path), get(results, key, "tokio", *path)
    q = paired(results, key, *path)
    ok = test(p, q)
    r = "n/a" if q is None else f"{q:.3f}×" if q >= 0.1 else fmt_ratio(q)
    return f"| {label} | {fmt(p)} | {fmt(t)} | {r} | {needed} | {'PASS' if ok else 'MISS'} |"
