#!/usr/bin/env python3
"""Draws the benchmark charts of docs/ as SVG, from the benches' CSV output.

Reads
    <source>/thread_pool.csv, <source>/process_pool.csv, <source>/workloads.csv
    as written by `write_data` in benches/common/mod.rs (header
    `section,variant,x,median,low,high,unit`; `low`/`high` are the smallest
    and largest of the runs the median is taken from, and may be empty).
    <source> is `$CARGO_TARGET_DIR/bench-data` if CARGO_TARGET_DIR is set,
    else `target/bench-data`, or the directory given with `--from`.
    A missing file skips the charts it feeds, with a note.

Writes
    docs/charts/per_task.svg       cost per task, every executor and peer
                                   (sections `per_task` of thread_pool.csv
                                   and process_pool.csv), log scale
    docs/charts/fib_workers.svg    CPU-bound workload: wall time against the
                                   worker count (workloads.csv, `fib_workers`)
    docs/charts/sleep_workers.svg  blocking workload: the same for `sleep_workers`
    docs/data/<bench>.csv          a copy of each CSV read, the charts' source
    docs/data/provenance.csv       when (UTC date of the file) and at which
                                   commit each CSV was measured, for the
                                   charts' footnotes when they are redrawn

To regenerate the charts after running the benches (from the repository root):

    cargo bench --bench thread_pool && cargo bench --bench process_pool && cargo bench --bench workloads && python3 scripts/charts.py

To redraw them from the committed data:

    python3 scripts/charts.py --from docs/data

Standard library only. The output is deterministic: the same CSV files (and
provenance) give byte-identical SVG files.
"""

import argparse
import csv
import datetime
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHES = ("thread_pool", "process_pool", "workloads")
HEADER = ["section", "variant", "x", "median", "low", "high", "unit"]
PROVENANCE = "provenance.csv"

# Headings of the groups of the per-task chart. Both benches run every pool
# with 2 workers (`const WORKERS` in benches/thread_pool.rs and
# benches/process_pool.rs).
GROUP_HEADINGS = {
    "thread_pool": "Thread pool (2 workers)",
    "process_pool": "Process pool (2 workers)",
}

# The charts of workloads.csv: section -> (title, subtitle).
SERIES_CHARTS = {
    "fib_workers": (
        "CPU-bound work (fib): wall time by worker count",
        "lower is better",
    ),
    "sleep_workers": (
        "Blocking work (sleep): wall time by worker count",
        "lower is better",
    ),
}

# Multipliers to a common unit: nanoseconds.
UNIT_NS = {"ns": 1.0, "us": 1e3, "\u00b5s": 1e3, "\u03bcs": 1e3, "ms": 1e6, "s": 1e9}

# ---------------------------------------------------------------------------
# Look
# ---------------------------------------------------------------------------

WIDTH = 800
FONT = "Arial, Helvetica, sans-serif"
INK = "#1f2328"  # text
MUTED = "#59636e"  # secondary text
AXIS = "#8c959f"
GRID = "#d8dee4"
GRID_MINOR = "#eef1f4"
OURS = "#0969da"  # our executors
PEER = "#b4bcc6"  # everything else
PEER_EDGE = "#8c959f"
WHISKER = "#1f2328"

# Okabe-Ito (colour-blind safe), for the lines.
OURS_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7"]
PEER_COLOURS = ["#E69F00", "#56B4E9", "#7A5195", "#A0522D", "#F0A8C8", "#6B8E23"]
BASELINE_COLOURS = ["#6e7781", "#3d444d"]  # "serial", "CPython serial"
MARKERS = ["circle", "square", "triangle", "diamond", "triangle-down", "cross", "pentagon"]

# Advance widths of Arial, in 1/1000 em, for estimating the width of text
# (SVG has no text measurement; renderers falling back to a wider font are
# covered by the margin in text_width).
_ARIAL = {
    " ": 278, "!": 278, '"': 355, "#": 556, "$": 556, "%": 889, "&": 667,
    "'": 191, "(": 333, ")": 333, "*": 389, "+": 584, ",": 278, "-": 333,
    ".": 278, "/": 278, ":": 278, ";": 278, "<": 584, "=": 584, ">": 584,
    "?": 556, "@": 1015, "[": 278, "\\": 278, "]": 278, "^": 469, "_": 556,
    "`": 333, "{": 334, "|": 260, "}": 334, "~": 584, "\u00b5": 556,
    "\u00d7": 584, "\u2013": 556, "\u2014": 1000, "\u2026": 1000, "\u00b7": 278,
    "A": 667, "B": 667, "C": 722, "D": 722, "E": 667, "F": 611, "G": 778,
    "H": 722, "I": 278, "J": 500, "K": 667, "L": 556, "M": 833, "N": 722,
    "O": 778, "P": 667, "Q": 778, "R": 722, "S": 667, "T": 611, "U": 722,
    "V": 667, "W": 944, "X": 667, "Y": 667, "Z": 611,
    "a": 556, "b": 556, "c": 500, "d": 556, "e": 556, "f": 278, "g": 556,
    "h": 556, "i": 222, "j": 222, "k": 500, "l": 222, "m": 833, "n": 556,
    "o": 556, "p": 556, "q": 556, "r": 333, "s": 500, "t": 278, "u": 556,
    "v": 500, "w": 722, "x": 500, "y": 500, "z": 500,
}


def text_width(text, size, bold=False):
    """Estimated width in px of `text` at `size` px, with a margin for
    wider fallback fonts (DejaVu Sans, the usual one on Linux, is up to
    ~20 % wider than Arial)."""
    em = sum(_ARIAL.get(c, 556) for c in text)  # digits and the rest: 556
    return em / 1000.0 * size * (1.26 if bold else 1.2)


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------


class DataError(Exception):
    """Malformed input: the message names the file and line."""


class Row:
    __slots__ = ("section", "variant", "x", "median", "low", "high", "unit", "line")

    def __init__(self, section, variant, x, median, low, high, unit, line):
        self.section = section
        self.variant = variant
        self.x = x
        self.median = median
        self.low = low
        self.high = high
        self.unit = unit
        self.line = line


def _number(text, what, where, allow_empty=True):
    text = text.strip()
    if text == "":
        if allow_empty:
            return None
        raise DataError(f"{where}: {what} is empty")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {what} {text!r} is not a finite number")
    return value


def read_csv(path):
    """The rows of one bench's CSV file, checked; DataError if malformed."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            records = list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    except csv.Error as e:
        raise DataError(f"{path}: not valid CSV ({e})") from None
    if not records:
        raise DataError(f"{path}: empty file (expected the header {','.join(HEADER)})")
    header = [h.strip() for h in records[0]]
    if header != HEADER:
        raise DataError(
            f"{path}:1: unexpected header {','.join(header)!r}, expected {','.join(HEADER)!r}"
        )
    rows = []
    for number, record in enumerate(records[1:], start=2):
        where = f"{path}:{number}"
        if not record or all(not field.strip() for field in record):
            continue  # blank line
        if len(record) != len(HEADER):
            raise DataError(
                f"{where}: {len(record)} fields, expected {len(HEADER)} ({','.join(HEADER)})"
            )
        section, variant, x, median, low, high, unit = (field.strip() for field in record)
        if not section:
            raise DataError(f"{where}: empty section")
        if not variant:
            raise DataError(f"{where}: empty variant")
        rows.append(
            Row(
                section,
                variant,
                _number(x, "x", where),
                _number(median, "median", where),
                _number(low, "low", where),
                _number(high, "high", where),
                unit,
                where,
            )
        )
    return rows


def in_ns(row):
    """(median, low, high) of a time row in nanoseconds (None stays None;
    a range that is not positive or does not hold the median is dropped)."""
    factor = UNIT_NS.get(row.unit)
    if factor is None:
        raise DataError(
            f"{row.line}: unit {row.unit!r} is not a time unit (expected one of ns, us, ms, s)"
        )
    median, low, high = (None if v is None else v * factor
                         for v in (row.median, row.low, row.high))
    if low is None or high is None or median is None or not 0 < low <= median <= high:
        low = high = None
    return median, low, high


def git(*args):
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), *args],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def current_commit():
    """The short commit of HEAD, marked when crates/ or src/ have changes
    (as the benches' own report does), or None outside git."""
    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return None
    dirty = git("status", "--porcelain", "--", "crates", "src")
    return commit + ("+changes" if dirty else "")


def read_provenance(directory):
    """{bench: (date, commit)} from <directory>/provenance.csv, if any."""
    path = directory / PROVENANCE
    if not path.is_file():
        return {}
    found = {}
    with open(path, newline="", encoding="utf-8") as f:
        records = list(csv.reader(f))
    if not records or [h.strip() for h in records[0]] != ["file", "date", "commit"]:
        raise DataError(f"{path}:1: expected the header file,date,commit")
    for number, record in enumerate(records[1:], start=2):
        if not record:
            continue
        if len(record) != 3:
            raise DataError(f"{path}:{number}: expected 3 fields (file,date,commit)")
        name, date, commit = (field.strip() for field in record)
        found[Path(name).stem] = (date, commit)
    return found


def write_provenance(directory, provenance):
    lines = ["file,date,commit"]
    for bench in sorted(provenance):
        date, commit = provenance[bench]
        lines.append(f"{bench}.csv,{date},{commit}")
    (directory / PROVENANCE).write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------
# SVG
# ---------------------------------------------------------------------------


def esc(text):
    return (
        str(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


def f(v):
    """A coordinate: at most 2 decimals, no trailing zeros (deterministic)."""
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


class Svg:
    def __init__(self, width, title):
        self.width = width
        self.title = title
        self.parts = []

    def add(self, element):
        self.parts.append(element)

    def text(self, x, y, content, size=12, anchor="start", weight=None, fill=INK,
             rotate=None, middle=False):
        """`middle`: `y` is the vertical centre of the text, not its baseline
        (shifted by hand: renderers differ on dominant-baseline)."""
        if middle and rotate is None:
            y += size * 0.35
        elif middle:
            x += size * 0.35
        attrs = [f'x="{f(x)}"', f'y="{f(y)}"', f'font-size="{size}"']
        if anchor != "start":
            attrs.append(f'text-anchor="{anchor}"')
        if weight:
            attrs.append(f'font-weight="{weight}"')
        if fill != INK:
            attrs.append(f'fill="{fill}"')
        if rotate is not None:
            attrs.append(f'transform="rotate({f(rotate)} {f(x)} {f(y)})"')
        self.add(f"<text {' '.join(attrs)}>{esc(content)}</text>")

    def line(self, x1, y1, x2, y2, stroke, width=1, dash=None, extra=""):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(
            f'<line x1="{f(x1)}" y1="{f(y1)}" x2="{f(x2)}" y2="{f(y2)}" '
            f'stroke="{stroke}" stroke-width="{f(width)}"{d}{extra}/>'
        )

    def rect(self, x, y, w, h, fill, stroke=None, extra=""):
        s = f' stroke="{stroke}"' if stroke else ""
        self.add(
            f'<rect x="{f(x)}" y="{f(y)}" width="{f(w)}" height="{f(h)}" fill="{fill}"{s}{extra}/>'
        )

    def render(self, height):
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{f(height)}" '
            f'viewBox="0 0 {self.width} {f(height)}" font-family="{FONT}" fill="{INK}" role="img">\n'
            f"<title>{esc(self.title)}</title>\n"
            f'<rect x="0" y="0" width="{self.width}" height="{f(height)}" fill="#ffffff"/>\n'
        )
        return head + "\n".join(self.parts) + "\n</svg>\n"


def marker(svg, shape, x, y, colour, r=4.0):
    """A marker of `shape` centred at (x, y), white-edged to stand out."""
    edge = ' stroke="#ffffff" stroke-width="1"'
    if shape == "circle":
        svg.add(f'<circle cx="{f(x)}" cy="{f(y)}" r="{f(r)}" fill="{colour}"{edge}/>')
    elif shape == "square":
        s = r * 0.9
        svg.rect(x - s, y - s, 2 * s, 2 * s, colour, extra=edge)
    else:
        if shape == "triangle":
            pts = [(x, y - r * 1.2), (x + r * 1.1, y + r * 0.8), (x - r * 1.1, y + r * 0.8)]
        elif shape == "triangle-down":
            pts = [(x, y + r * 1.2), (x + r * 1.1, y - r * 0.8), (x - r * 1.1, y - r * 0.8)]
        elif shape == "pentagon":
            pts = [(x + r * 1.15 * math.sin(2 * math.pi * k / 5),
                    y - r * 1.15 * math.cos(2 * math.pi * k / 5)) for k in range(5)]
        elif shape == "diamond":
            pts = [(x, y - r * 1.25), (x + r * 1.0, y), (x, y + r * 1.25), (x - r * 1.0, y)]
        else:  # cross: a plus sign made of a polygon
            a, b = r * 1.1, r * 0.4
            pts = [(x - b, y - a), (x + b, y - a), (x + b, y - b), (x + a, y - b),
                   (x + a, y + b), (x + b, y + b), (x + b, y + a), (x - b, y + a),
                   (x - b, y + b), (x - a, y + b), (x - a, y - b), (x - b, y - b)]
        points = " ".join(f"{f(px)},{f(py)}" for px, py in pts)
        svg.add(f'<polygon points="{points}" fill="{colour}"{edge}/>')


def wrap(text, size, width, prefer_punctuation=False):
    """`text` in lines no wider than `width` px, broken at the last space
    that fits, or with `prefer_punctuation` preferably after ': ', then
    after ', ' (a single word longer than `width` stays whole)."""
    lines = []
    rest = text
    while text_width(rest, size) > width:
        fits = [i for i in range(1, len(rest)) if rest[i] == " "
                and text_width(rest[:i], size) <= width]
        if not fits:
            break
        cut = fits[-1]
        if prefer_punctuation:
            cut = next((i for i in reversed(fits) if rest[i - 1] == ":"),
                       next((i for i in reversed(fits) if rest[i - 1] == ","), cut))
        lines.append(rest[:cut])
        rest = rest[cut + 1:]
    lines.append(rest)
    return lines


def footnote_lines(sources, width, size=11):
    """The footnote naming the data files, their date and commit."""
    described = {(date, commit) for _, date, commit in sources}
    names = ", ".join(name for name, _, _ in sources)
    if len(described) == 1:
        date, commit = next(iter(described))
        when = [p for p in (f"measured {date}" if date else "",
                            f"commit {commit}" if commit else "") if p]
        text = f"Data: {names}" + (f" ({', '.join(when)})" if when else "")
    else:
        text = "Data: " + "; ".join(
            name + (f" ({', '.join(p for p in (date, f'commit {commit}' if commit else '') if p)})"
                    if date or commit else "")
            for name, date, commit in sources
        )
    text += ". Drawn by scripts/charts.py."
    return wrap(text, size, width)


# ---------------------------------------------------------------------------
# Number formatting
# ---------------------------------------------------------------------------


def fmt_sig(v):
    """3 significant figures, no exponent: 312, 11.0, 9.90, 0.068."""
    if v == 0:
        return "0"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def fmt_ns(ns):
    """A duration in ns with a unit that keeps it in [1, 1000): 60 ns,
    312 ns, 9.90 µs, 11.0 µs, 124 µs, 1.50 ms."""
    for factor, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "\u00b5s")):
        if ns >= factor * 0.9995:
            return f"{fmt_sig(ns / factor)} {unit}"
    if ns >= 10:
        return f"{ns:.0f} ns"
    return f"{fmt_sig(ns)} ns"


def fmt_tick_ns(ns):
    """A log-axis tick: 10 ns, 100 ns, 1 µs, 20 µs, 1 ms, 2 s."""
    for factor, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "\u00b5s"), (1.0, "ns")):
        if ns >= factor * 0.9995 or factor == 1.0:
            return f"{fmt_plain(ns / factor)} {unit}"


def fmt_plain(v):
    """A tick value: 1, 2.5, 1,000, 0.5 (no float noise)."""
    if abs(v - round(v)) < 1e-9 * max(1.0, abs(v)):
        return f"{int(round(v)):,}"
    return f"{v:.6g}"


def log_ticks(lo, hi, steps=(1, 2, 5)):
    """The values m * 10^k (m in `steps`) within [lo, hi]."""
    ticks = []
    for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in steps:
            v = m * 10.0 ** k
            if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
                ticks.append(float(f"{v:.12g}"))
    return ticks


def linear_ticks(hi, most=8):
    """Ticks from 0 with a 1/2/2.5/5 step, the last at or above `hi`, at
    most `most` steps."""
    raw = hi / most
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    count = math.ceil(hi / step - 1e-9)
    return [float(f"{i * step:.12g}") for i in range(count + 1)]


# ---------------------------------------------------------------------------
# Chart 1: cost per task, horizontal bars
# ---------------------------------------------------------------------------


def is_ours(variant):
    return "(ours" in variant


def per_task_chart(groups, sources):
    """`groups`: [(heading, [(variant, median_ns, low_ns, high_ns)])]."""
    title = "Cost per task: submit many no-op tasks, then take every result"
    svg = Svg(WIDTH, title)
    label_size, value_size = 12, 12
    left_pad, right_pad = 16, 16
    value_room = max(
        text_width(fmt_ns(m), value_size) for _, bars in groups for _, m, _, _ in bars
    ) + 12
    # The label column: as wide as the longest label, up to 40 % of the
    # width (longer labels wrap).
    widest = max(text_width(v, label_size) for _, bars in groups for v, _, _, _ in bars)
    label_col = min(widest, WIDTH * 0.40)
    plot_left = left_pad + label_col + 10
    plot_right = WIDTH - right_pad - value_room

    values = [v for _, bars in groups for _, m, lo, hi in bars for v in (m, lo, hi)
              if v is not None and v > 0]
    lo_dec = math.floor(math.log10(min(values)))
    hi_dec = math.ceil(math.log10(max(values)))
    if hi_dec == lo_dec:
        hi_dec += 1

    def px(ns):
        t = (math.log10(ns) - lo_dec) / (hi_dec - lo_dec)
        return plot_left + t * (plot_right - plot_left)

    # Header: title, subtitle, legend.
    svg.text(left_pad, 28, title, size=17, weight="bold")
    has_range = any(lo is not None for _, bars in groups for _, _, lo, _ in bars)
    svg.text(left_pad, 48, "median of the runs" + (
        ", whiskers from the fastest to the slowest run" if has_range else "")
        + "; log scale, lower is better", size=12, fill=MUTED)
    lx = left_pad
    for colour, edge, label in ((OURS, None, "concurrent-futures (ours)"),
                                (PEER, PEER_EDGE, "other Rust crates and CPython")):
        svg.rect(lx, 62, 14, 12, colour, stroke=edge, extra=' stroke-width="0.8"' if edge else "")
        svg.text(lx + 20, 72.5, label, size=12)
        lx += 20 + text_width(label, 12) + 24

    # Rows.
    bar_h, row_gap, line_h = 16, 8, 14
    y = 92
    plot_top = y
    rows = []  # (kind, y, ...)
    for heading, bars in groups:
        y += 6
        rows.append(("heading", y + 14, heading))
        y += 24
        for variant, m, lo, hi in bars:
            lines = wrap(variant, label_size, label_col, prefer_punctuation=True)
            h = max(bar_h, len(lines) * line_h) + row_gap
            rows.append(("bar", y + h / 2, variant, lines, m, lo, hi))
            y += h
        y += 4
    plot_bottom = y

    # Grid: a line per decade, faint ones at 2..9.
    for k in range(lo_dec, hi_dec + 1):
        x = px(10.0 ** k)
        svg.line(x, plot_top, x, plot_bottom, GRID if k not in (lo_dec,) else AXIS)
        if k < hi_dec:
            for m in range(2, 10):
                xm = px(m * 10.0 ** k)
                svg.line(xm, plot_top, xm, plot_bottom, GRID_MINOR)

    for row in rows:
        if row[0] == "heading":
            _, ty, heading = row
            svg.text(left_pad, ty, heading, size=13, weight="bold")
            continue
        _, cy, variant, lines, m, lo, hi = row
        first = cy - (len(lines) - 1) * line_h / 2
        for i, text in enumerate(lines):
            svg.text(plot_left - 10, first + i * line_h, text, size=label_size, anchor="end",
                     middle=True)
        ours = is_ours(variant)
        end = px(m)
        svg.rect(plot_left, cy - bar_h / 2, max(end - plot_left, 1), bar_h,
                 OURS if ours else PEER,
                 stroke=None if ours else PEER_EDGE,
                 extra="" if ours else ' stroke-width="0.8"')
        label_x = end
        if lo is not None and hi is not None and hi > lo:
            x1, x2 = px(lo), px(hi)
            svg.line(x1, cy, x2, cy, WHISKER, 1.2)
            svg.line(x1, cy - 4, x1, cy + 4, WHISKER, 1.2)
            svg.line(x2, cy - 4, x2, cy + 4, WHISKER, 1.2)
            label_x = max(label_x, x2)
        svg.text(label_x + 6, cy, fmt_ns(m), size=value_size, middle=True,
                 weight="bold" if ours else None)

    # Axis: ticks at each decade.
    svg.line(plot_left, plot_bottom, plot_right, plot_bottom, AXIS)
    for k in range(lo_dec, hi_dec + 1):
        x = px(10.0 ** k)
        svg.line(x, plot_bottom, x, plot_bottom + 5, AXIS)
        svg.text(x, plot_bottom + 19, fmt_tick_ns(10.0 ** k), size=12, anchor="middle",
                 fill=MUTED)
    svg.text((plot_left + plot_right) / 2, plot_bottom + 40,
             "time per task (log scale)", size=12, anchor="middle")
    y = plot_bottom + 66
    for text in footnote_lines(sources, WIDTH - 2 * left_pad):
        svg.text(left_pad, y, text, size=11, fill=MUTED)
        y += 15
    return svg.render(y + 4)


# ---------------------------------------------------------------------------
# Charts 2 and 3: wall time against the worker count, lines
# ---------------------------------------------------------------------------


def series_style(variants):
    """{variant: (colour, marker, dash, width)}: ours solid and thick, peers
    dashed, the serial runs ("serial", "CPython serial") grey and dotted;
    fixed by the order of first appearance."""
    styles = {}
    ours_i = peer_i = base_i = 0
    for i, v in enumerate(variants):
        shape = MARKERS[i % len(MARKERS)]
        if "serial" in v.lower():
            colour = BASELINE_COLOURS[base_i % len(BASELINE_COLOURS)]
            styles[v] = (colour, shape, "2 3" if base_i % 2 == 0 else "6 3 2 3", 1.8)
            base_i += 1
        elif is_ours(v):
            styles[v] = (OURS_COLOURS[ours_i % len(OURS_COLOURS)], shape, None, 2.4)
            ours_i += 1
        else:
            styles[v] = (PEER_COLOURS[peer_i % len(PEER_COLOURS)], shape, "7 4", 1.8)
            peer_i += 1
    return styles


def series_chart(section, series, styles, sources):
    """`series`: [(variant, [(x, median_ms, low_ms, high_ms)])] in file order."""
    title, subtitle = SERIES_CHARTS.get(
        section, (f"{section}: wall time by worker count", "lower is better"))
    svg = Svg(WIDTH, title)
    left_pad = 16
    plot_left, plot_right = 78, WIDTH - 24
    plot_top, plot_h = 74, 330
    plot_bottom = plot_top + plot_h

    points = [p for _, pts in series for p in pts]
    xs = sorted({p[0] for p in points})
    values = [v for p in points for v in p[1:] if v is not None and v > 0]
    lo_v, hi_v = min(values), max(values)
    log = hi_v / lo_v >= 10
    if log:
        # A little room around the data; ticks at 1-2-5 inside it.
        lo_axis, hi_axis = lo_v / 1.25, hi_v * 1.25
        ticks = log_ticks(lo_axis, hi_axis)
        if len(ticks) < 3:
            ticks = log_ticks(lo_axis, hi_axis, steps=(1, 2, 3, 5, 7))

        def py(ms):
            t = (math.log10(ms) - math.log10(lo_axis)) / (math.log10(hi_axis) - math.log10(lo_axis))
            return plot_bottom - t * plot_h
        axis_label = "wall time, ms (log scale)"
    else:
        ticks = linear_ticks(hi_v * 1.05)
        lo_axis, hi_axis = 0.0, ticks[-1]

        def py(ms):
            return plot_bottom - (ms - lo_axis) / (hi_axis - lo_axis) * plot_h
        axis_label = "wall time, ms"

    x_pad = (plot_right - plot_left) * 0.06
    if len(xs) > 1:
        def px(x):
            return plot_left + x_pad + (x - xs[0]) / (xs[-1] - xs[0]) * (plot_right - plot_left - 2 * x_pad)
    else:
        def px(x):
            return (plot_left + plot_right) / 2

    svg.text(left_pad, 28, title, size=17, weight="bold")
    has_range = any(lo is not None and hi is not None and hi > lo for _, _, lo, hi in points)
    notes = ["median of the runs"]
    if has_range:
        notes.append("error bars from the fastest to the slowest run")
    notes.append(subtitle)
    if log:
        notes.append("log scale")
    if len(series) > 1 and len(xs) > 1:
        notes.append("series offset sideways a little so that none hides another")
    sub_lines = wrap("; ".join(notes), 12, WIDTH - 2 * left_pad)
    for i, text in enumerate(sub_lines):
        svg.text(left_pad, 48 + 16 * i, text, size=12, fill=MUTED)
    shift = 16 * (len(sub_lines) - 1)
    plot_top += shift
    plot_bottom += shift

    # Grid and y ticks.
    if log:
        for m_tick in log_ticks(lo_axis, hi_axis, steps=range(1, 10)):
            if m_tick not in ticks:
                svg.line(plot_left, py(m_tick), plot_right, py(m_tick), GRID_MINOR)
    for t in ticks:
        y = py(t)
        svg.line(plot_left, y, plot_right, y, GRID)
        svg.line(plot_left - 5, y, plot_left, y, AXIS)
        svg.text(plot_left - 9, y, fmt_plain(t), size=12, anchor="end", fill=MUTED,
                 middle=True)
    # x ticks at the worker counts.
    for x in xs:
        svg.line(px(x), plot_bottom, px(x), plot_bottom + 5, AXIS)
        svg.text(px(x), plot_bottom + 20, fmt_plain(x), size=12, anchor="middle", fill=MUTED)
    svg.line(plot_left, plot_top, plot_left, plot_bottom, AXIS)
    svg.line(plot_left, plot_bottom, plot_right, plot_bottom, AXIS)
    svg.text((plot_left + plot_right) / 2, plot_bottom + 42, "workers", size=12,
             anchor="middle")
    svg.text(left_pad + 8, (plot_top + plot_bottom) / 2, axis_label, size=12,
             anchor="middle", rotate=-90, middle=True)

    # Series: peers first, so ours are drawn on top.
    # Each series is nudged sideways by a few px (in file order), so that
    # series with the same figures do not hide each other's markers.
    nudge_step = 3.0 if len(xs) > 1 else 0.0
    nudge = {v: (i - (len(series) - 1) / 2) * nudge_step for i, (v, _) in enumerate(series)}
    order = [s for s in series if not is_ours(s[0])] + [s for s in series if is_ours(s[0])]
    base_px = px
    for variant, pts in order:
        colour, shape, dash, width = styles[variant]
        pts = sorted(pts)

        def px(x, _d=nudge[variant]):
            return base_px(x) + _d
        for x, m, lo, hi in pts:
            if lo is not None and hi is not None and hi > lo:
                X = px(x)
                svg.line(X, py(hi), X, py(lo), colour, 1.2)
                svg.line(X - 4, py(hi), X + 4, py(hi), colour, 1.2)
                svg.line(X - 4, py(lo), X + 4, py(lo), colour, 1.2)
        if len(pts) > 1:
            path = " ".join(f"{f(px(x))},{f(py(m))}" for x, m, _, _ in pts)
            d = f' stroke-dasharray="{dash}"' if dash else ""
            svg.add(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                    f'stroke-width="{f(width)}" stroke-linejoin="round"{d}/>')
        for x, m, _, _ in pts:
            marker(svg, shape, px(x), py(m), colour)

    # Legend below the plot, in columns.
    names = [v for v, _ in series]
    entry_w = max(text_width(v, 12) for v in names) + 46
    columns = max(1, min(len(names), int((WIDTH - 2 * left_pad) // entry_w), 3))
    col_w = (WIDTH - 2 * left_pad) / columns
    y0 = plot_bottom + 68
    for i, variant in enumerate(names):
        colour, shape, dash, width = styles[variant]
        cx = left_pad + (i % columns) * col_w + 4
        cy = y0 + (i // columns) * 22
        d = f' stroke-dasharray="{dash}"' if dash else ""
        svg.add(f'<line x1="{f(cx)}" y1="{f(cy)}" x2="{f(cx + 32)}" y2="{f(cy)}" '
                f'stroke="{colour}" stroke-width="{f(width)}"{d}/>')
        marker(svg, shape, cx + 16, cy, colour)
        svg.text(cx + 40, cy, variant, size=12, middle=True,
                 weight="bold" if is_ours(variant) else None)
    y = y0 + math.ceil(len(names) / columns) * 22 + 14
    for text in footnote_lines(sources, WIDTH - 2 * left_pad):
        svg.text(left_pad, y, text, size=11, fill=MUTED)
        y += 15
    return svg.render(y + 4)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def default_source():
    target = os.environ.get("CARGO_TARGET_DIR")
    return (Path(target) if target else REPO / "target") / "bench-data"


def shown(path):
    """`path` relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Draw docs/charts/*.svg from the benches' CSV output "
        "(see the docstring of this script).")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="directory of thread_pool.csv, process_pool.csv, workloads.csv "
                        "(default: $CARGO_TARGET_DIR/bench-data or target/bench-data)")
    parser.add_argument("--charts", type=Path, default=REPO / "docs" / "charts",
                        help="where the SVG files go (default: docs/charts)")
    parser.add_argument("--data", type=Path, default=REPO / "docs" / "data",
                        help="where the CSV files read are copied (default: docs/data)")
    args = parser.parse_args(argv)
    source = args.source if args.source is not None else default_source()

    if not source.is_dir():
        print(f"error: no directory {source}; run the benches first:\n"
              "  cargo bench --bench thread_pool && cargo bench --bench process_pool && "
              "cargo bench --bench workloads && python3 scripts/charts.py", file=sys.stderr)
        return 1

    # Read and check everything before writing anything.
    data, paths = {}, {}
    provenance = read_provenance(source)
    commit = None
    for bench in BENCHES:
        path = source / f"{bench}.csv"
        if not path.is_file():
            print(f"note: no {shown(path)} (skipped)")
            continue
        data[bench] = read_csv(path)
        paths[bench] = path
        print(f"read  {shown(path)} ({len(data[bench])} rows)")
        if bench not in provenance:
            if commit is None:
                commit = current_commit() or ""
            mtime = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
            provenance[bench] = (mtime.strftime("%Y-%m-%d"), commit)
    if not data:
        print(f"error: none of {', '.join(b + '.csv' for b in BENCHES)} in {source}; "
              "run the benches first (see python3 scripts/charts.py --help)", file=sys.stderr)
        return 1

    def source_notes(benches):
        return [(shown(args.data / f"{b}.csv"), *provenance[b]) for b in benches]

    outputs = {}  # file name -> SVG text

    # Chart 1: per task.
    groups, used = [], []
    for bench in ("thread_pool", "process_pool"):
        if bench not in data:
            continue
        bars = []
        for row in data[bench]:
            if row.section != "per_task":
                continue
            m, lo, hi = in_ns(row)
            if m is None or m <= 0:
                print(f"note: {row.line}: {row.variant!r} has no positive figure; left out")
                continue
            bars.append((row.variant, m, lo, hi))
        if bars:
            groups.append((GROUP_HEADINGS.get(bench, bench), bars))
            used.append(bench)
        else:
            print(f"note: no per_task rows in {shown(paths[bench])}")
    if groups:
        outputs["per_task.svg"] = per_task_chart(groups, source_notes(used))
    else:
        print("note: per_task.svg skipped (no per_task data)")

    # Charts 2 and 3: the workloads.
    if "workloads" in data:
        rows = data["workloads"]
        variants = []
        for row in rows:
            if row.section in SERIES_CHARTS and row.variant not in variants:
                variants.append(row.variant)
        styles = series_style(variants)
        for section in SERIES_CHARTS:
            series = {}
            for row in rows:
                if row.section != section:
                    continue
                if row.x is None:
                    raise DataError(f"{row.line}: {section} row without a worker count (x)")
                m, lo, hi = (None if v is None else v / 1e6 for v in in_ns(row))
                if m is None or m <= 0:
                    print(f"note: {row.line}: {row.variant!r} at x={fmt_plain(row.x)} "
                          "has no positive figure; left out")
                    continue
                series.setdefault(row.variant, []).append((row.x, m, lo, hi))
            if series:
                outputs[f"{section}.svg"] = series_chart(
                    section, list(series.items()), styles, source_notes(["workloads"]))
            else:
                print(f"note: {section}.svg skipped (no {section} rows in "
                      f"{shown(paths['workloads'])})")
    else:
        for section in SERIES_CHARTS:
            print(f"note: {section}.svg skipped (no workloads.csv)")

    # Write: the data next to the charts, then the charts.
    args.data.mkdir(parents=True, exist_ok=True)
    kept = read_provenance(args.data) if args.data.resolve() != source.resolve() else {}
    for bench, path in paths.items():
        target = args.data / f"{bench}.csv"
        if path.resolve() != target.resolve():
            shutil.copyfile(path, target)
            print(f"wrote {shown(target)}")
        kept[bench] = provenance[bench]
    write_provenance(args.data, kept)
    print(f"wrote {shown(args.data / PROVENANCE)}")
    args.charts.mkdir(parents=True, exist_ok=True)
    for name, text in outputs.items():
        target = args.charts / name
        target.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {shown(target)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DataError as e:
        print(f"error: malformed bench data: {e}", file=sys.stderr)
        sys.exit(2)
