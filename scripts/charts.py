#!/usr/bin/env python3
"""Draws the benchmark charts of docs/ as SVG, from the benches' CSV output.

Reads thread_pool.csv, process_pool.csv and workloads.csv (header
`section,variant,x,median,low,high,unit`, as benches/common/mod.rs writes them;
`low`/`high` are the fastest and slowest run, maybe empty) from
`$CARGO_TARGET_DIR/bench-data`, else `target/bench-data`, or `--from DIR`; a
missing file skips its charts, with a note. Writes docs/charts/per_task.svg,
fib_workers.svg, fib_speedup.svg (the seeds' lesson: fib as speed-up over each
runtime's own serial run) and sleep_workers.svg; a copy of each CSV read to
docs/data/, with provenance.csv there (the UTC date of each file and the commit
it was measured at, for the charts' footnotes). From the repository root:

    cargo bench --bench thread_pool && cargo bench --bench process_pool && cargo bench --bench workloads && python3 scripts/charts.py
    python3 scripts/charts.py --from docs/data   # redraw from the committed data

Needs matplotlib (python3 -m pip install matplotlib), nothing else outside the
standard library. The same CSV files (and provenance) give byte-identical SVG
files, with the same matplotlib.
"""
import argparse, csv, datetime, math, os, shutil, subprocess, sys, textwrap  # noqa: E401
from collections import namedtuple
from functools import partial
from pathlib import Path

try:
    import matplotlib
except ImportError:
    sys.exit("error: scripts/charts.py draws with matplotlib, which this Python lacks; "
             f"install it with:\n  {sys.executable} -m pip install matplotlib")
matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MultipleLocator, NullFormatter  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BENCHES = ("thread_pool", "process_pool", "workloads")
HEADER = ["section", "variant", "x", "median", "low", "high", "unit"]
Row = namedtuple("Row", "section variant x median low high unit where")
UNIT_NS = {"ns": 1.0, "us": 1e3, "\u00b5s": 1e3, "\u03bcs": 1e3, "ms": 1e6, "s": 1e9}
# Both benches run every pool with 2 workers (`const WORKERS` in benches/*.rs).
GROUPS = {"thread_pool": "Thread pool (2 workers)", "process_pool": "Process pool (2 workers)"}
TITLES = {"fib_workers": "CPU-bound work (fib): wall time by worker count",
          "sleep_workers": "Blocking work (sleep): wall time by worker count"}
# The seeds' lesson: (variant, the serial run of its runtime, legend label).
SPEEDUP = [("ThreadPoolExecutor (ours)", "serial", "Rust threads: ThreadPoolExecutor (ours)"),
           ("ProcessPoolExecutor (ours)", "serial", "Rust processes: ProcessPoolExecutor (ours)"),
           ("rayon", "serial", "Rust threads: rayon"),
           ("CPython ThreadPoolExecutor", "CPython serial", "CPython threads: ThreadPoolExecutor"),
           ("CPython ProcessPoolExecutor", "CPython serial", "CPython processes: ProcessPoolExecutor")]

# Look: Rust in cool colours, CPython in warm ones, the serial runs grey
# (Okabe-Ito, colour-blind safe); threads solid, processes dashed, serial
# dotted; ours thicker and in bold. Every chart is WIDTH inches wide.
WIDTH, INK, MUTED, GRID, GRID_MINOR = 10.0, "#1f2328", "#59636e", "#d8dee4", "#eef1f4"
OURS, PEER, EDGE = "#0969da", "#b4bcc6", "#8c959f"
COLOURS = {"ThreadPoolExecutor (ours)": "#0072B2", "ProcessPoolExecutor (ours)": "#009E73",
           "rayon": "#56B4E9", "CPython ThreadPoolExecutor": "#D55E00",
           "CPython ProcessPoolExecutor": "#E69F00", "serial": "#6e7781", "CPython serial": "#3d444d"}
SPARE_COLOURS, MARKERS = ["#CC79A7", "#7A5195", "#A0522D", "#6B8E23"], "os^DvPp"
matplotlib.rcParams.update({
    "svg.hashsalt": "concurrent-futures charts", "svg.fonttype": "none",
    "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 10, "axes.edgecolor": EDGE, "axes.labelcolor": INK, "axes.spines.top": False,
    "axes.spines.right": False, "xtick.color": MUTED, "ytick.color": MUTED, "legend.frameon": False,
})


class DataError(Exception):
    """Malformed input: the message names the file and line."""


def read_csv(path):
    """The Rows of one bench's CSV file, checked."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        records = list(csv.reader(f))
    if not records or [h.strip() for h in records[0]] != HEADER:
        raise DataError(f"{path}:1: expected the header {','.join(HEADER)}")
    rows = []
    for number, record in enumerate(records[1:], start=2):
        fields = [field.strip() for field in record]
        try:
            if len(fields) != len(HEADER):
                raise ValueError(f"{len(fields)} fields")
            numbers = [float(n) if n else None for n in fields[2:6]]
        except ValueError as e:
            if any(fields):  # else a blank line
                raise DataError(f"{path}:{number}: expected {','.join(HEADER)} ({e})") from None
            continue
        if fields[0] in TITLES and numbers[0] is None:
            raise DataError(f"{path}:{number}: {fields[0]} row without a worker count (x)")
        rows.append(Row(*fields[:2], *numbers, fields[6], f"{path}:{number}"))
    return rows


def times(row, unit="ns"):
    """(median, low, high) of a time row in `unit`; no range (None, None)
    where it is missing or does not hold a positive median."""
    if row.unit not in UNIT_NS:
        raise DataError(f"{row.where}: unit {row.unit!r} is not one of ns, us, ms, s")
    m, lo, hi = (v and v * UNIT_NS[row.unit] / UNIT_NS[unit] for v in row[3:6])
    return (m, lo, hi) if None not in (m, lo, hi) and 0 < lo <= m <= hi else (m, None, None)


def section(rows, name, unit="ns"):
    """[(variant, x, median, low, high)] of the rows of section `name` with a
    positive median, times in `unit`."""
    return [(r.variant, r.x, *t) for r in rows if r.section == name
            for t in [times(r, unit)] if (t[0] or 0) > 0]


def read_provenance(directory):
    """{bench: (date, commit)} from <directory>/provenance.csv, if any."""
    path = directory / "provenance.csv"
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        records = [r for r in csv.reader(f) if r]
    if records[:1] != [["file", "date", "commit"]] or any(len(r) != 3 for r in records):
        raise DataError(f"{path}: expected the header file,date,commit and 3 fields a line")
    return {Path(name).stem: (date, commit) for name, date, commit in records[1:]}


def git(*args):
    out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def fmt_plain(v):
    """A tick value: 1, 2.5, 1,000 (no float noise)."""
    return f"{round(v):,}" if abs(v - round(v)) < 1e-9 * max(1.0, abs(v)) else f"{v:.6g}"


def fmt_ns(ns, tick=False):
    """A duration with a unit that keeps it in [1, 1000): 312 ns, 9.90 µs
    (3 figures), or as a tick 10 ns, 1 µs."""
    for factor, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "\u00b5s"), (1.0, "ns")):
        if ns >= factor * 0.9995 or factor == 1.0:
            v = ns / factor
            return (fmt_plain(v) if tick else f"{v:#.3g}".rstrip(".")) + " " + unit


def is_ours(variant):
    return "(ours" in variant


def figure(height, title, notes, foot, legend_row=False, **subplots):
    """A figure WIDTH x `height` inches: the title, `notes` and the footnote
    in fixed bands (and room for a legend row under the notes), the axes
    laid out between; also the top of the legend row, as a fraction."""
    notes, foot = textwrap.wrap(notes, 132), textwrap.wrap(foot, 150)
    top = 0.5 + 0.19 * len(notes) + (0.3 if legend_row else 0)
    bottom = 0.12 + 0.17 * len(foot)
    fig, axes = plt.subplots(figsize=(WIDTH, height), layout="constrained", **subplots)
    fig.get_layout_engine().set(rect=(0, bottom / height, 1, 1 - (top + bottom) / height))
    left = 0.12 / WIDTH
    fig.text(left, 1 - 0.12 / height, title, va="top", fontsize=14, fontweight="bold")
    fig.text(left, 1 - 0.45 / height, "\n".join(notes), va="top", color=MUTED, linespacing=1.5)
    fig.text(left, 0.1 / height, "\n".join(foot), fontsize=8.5, color=MUTED, linespacing=1.5)
    return fig, axes, 1 - (top - 0.3) / height


def footnote(sources):
    """The footnote naming the data files, [(name, date, commit)]."""
    def when(date, commit):
        parts = [p for p in (date and f"measured {date}", commit and f"commit {commit}") if p]
        return f" ({', '.join(parts)})" if parts else ""
    if len({(d, c) for _, d, c in sources}) == 1:  # the same date and commit for all
        text = ", ".join(name for name, _, _ in sources) + when(*sources[0][1:])
    else:
        text = "; ".join(name + when(d, c) for name, d, c in sources)
    return f"Data: {text}. Drawn by scripts/charts.py."


def per_task_chart(groups, foot):
    """`groups`: {heading: [(variant, median_ns, low_ns, high_ns)]}, as bars."""
    counts = [len(bars) for bars in groups.values()]
    fig, axes, legend_y = figure(
        1.7 + 0.3 * sum(counts) + 0.45 * len(groups),
        "Cost per task: submit many no-op tasks, then take every result",
        "median of the runs, whiskers from the fastest to the slowest run; log scale, lower is "
        "better", foot, legend_row=True, nrows=len(groups), sharex=True, height_ratios=counts,
        squeeze=False)
    fig.legend([Patch(color=OURS), Patch(facecolor=PEER, edgecolor=EDGE)],
               ["concurrent-futures (ours)", "other Rust crates and CPython"],
               loc="upper left", bbox_to_anchor=(0.1 / WIDTH, legend_y), ncols=2)
    values = [v for bars in groups.values() for bar in bars for v in bar[1:] if v]
    left = 10.0 ** math.floor(math.log10(min(values)))  # the decade below the least
    for ax, (heading, bars) in zip(axes[:, 0], groups.items()):
        ours = [is_ours(v) for v, *_ in bars]
        ax.barh(range(len(bars)), [m - left for _, m, _, _ in bars], left=left, height=0.65,
                color=[OURS if o else PEER for o in ours],
                edgecolor=["none" if o else EDGE for o in ours], linewidth=0.8)
        for y, ((variant, m, lo, hi), o) in enumerate(zip(bars, ours)):
            if lo is not None:
                ax.errorbar(m, y, xerr=[[m - lo], [hi - m]], color=INK, capsize=3, lw=1)
            ax.text((hi or m) * 1.12, y, fmt_ns(m), va="center", fontweight="bold" if o else None)
        ax.set_yticks(range(len(bars)), [v for v, *_ in bars], color=INK)
        ax.tick_params(axis="y", length=0)
        ax.invert_yaxis()
        ax.set_title(heading, loc="left", fontweight="bold", fontsize=11)
        ax.set_xscale("log")
        ax.set_xlim(left, max(values) * 6)
        ax.grid(axis="x", which="major", color=GRID)
        ax.grid(axis="x", which="minor", color=GRID_MINOR)
        ax.set_axisbelow(True)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_ns(v, tick=True)))
    ax.set_xlabel("time per task (log scale)")
    return fig


def by_workers(title, notes, series, foot, labels=None):
    """A figure of `series`, {variant: [(workers, median, low, high)]}, as
    lines with error bars, each nudged sideways a little so that none hides
    another; styled as in COLOURS, or by their order for other variants."""
    fig, ax, _ = figure(6.2, title, notes, foot)
    for i, (variant, points) in enumerate(series.items()):
        ours, kind = is_ours(variant), variant.lower()
        k = list(COLOURS).index(variant) if variant in COLOURS else len(COLOURS) + i
        xs, ms, lows, highs = zip(*sorted(points))
        nudge = (i - (len(series) - 1) / 2) * 0.025
        ax.errorbar([x + nudge for x in xs], ms, label=(labels or {}).get(variant, variant),
                    yerr=[[m - (lo or m) for m, lo in zip(ms, lows)],
                          [(hi or m) - m for m, hi in zip(ms, highs)]],
                    color=COLOURS.get(variant, SPARE_COLOURS[i % len(SPARE_COLOURS)]),
                    ls=":" if "serial" in kind else "--" if "process" in kind else "-",
                    lw=2.4 if ours else 1.6, marker=MARKERS[k % len(MARKERS)], ms=6,
                    capsize=3, elinewidth=1, zorder=3 if ours else 2)
    ax.set_xticks(sorted({x for points in series.values() for x, *_ in points}))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_plain(v)))
    ax.set_xlabel("workers")
    ax.grid(axis="y", color=GRID)
    ax.set_axisbelow(True)
    return fig, ax


def bold_ours(legend):
    for text in legend.get_texts():
        text.set_fontweight("bold" if is_ours(text.get_text()) else "normal")


def time_chart(name, series, foot):
    """Wall time (ms) against the worker count; log scale if over a decade."""
    values = [v for points in series.values() for p in points for v in p[1:] if v]
    log = max(values) / min(values) >= 10
    fig, ax = by_workers(TITLES[name], "median of the runs; error bars from the fastest to the "
                         "slowest run; lower is better" + ("; log scale" if log else "")
                         + "; series offset sideways a little so that none hides another",
                         series, foot)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(axis="y", which="minor", color=GRID_MINOR)
    else:
        ax.set_ylim(0, max(values) * 1.05)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_plain(v)))
    ax.set_ylabel("wall time, ms" + (" (log scale)" if log else ""))
    bold_ours(ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=3))
    return fig


def speedup_chart(series, foot):
    """The seeds' lesson: serial time / pool time against the worker count."""
    fig, ax = by_workers(
        "The seeds' lesson: CPU-bound work needs processes in CPython; in Rust threads scale",
        "In CPython, threads do not speed up CPU-bound work (they take turns holding the GIL) "
        "and processes do; in Rust, threads already scale, like processes. Speed-up on fib = "
        "serial time / pool time, each pool against the serial run of its own runtime; higher "
        "is better; median of the runs, error bars from the pool's slowest to its fastest run.",
        series, foot, labels={v: label for v, _, label in SPEEDUP})
    xs = sorted({x for points in series.values() for x, *_ in points})
    ax.plot(xs, xs, color=EDGE, ls=":", lw=1.5, label="ideal: speed-up = workers")
    ax.axhline(1, color=EDGE, lw=0.8)
    ax.set_ylim(0, xs[-1] + 0.3)
    ax.yaxis.set_major_locator(MultipleLocator(1))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{fmt_plain(v)}x"))
    ax.set_ylabel("speed-up over serial (1x = no gain)")
    bold_ours(ax.legend(loc="upper left"))
    return fig


def shown(path):
    """`path` relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)


def main(argv=None):
    target = os.environ.get("CARGO_TARGET_DIR")
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", type=Path, metavar="DIR",
                        default=(Path(target) if target else REPO / "target") / "bench-data",
                        help="where the CSV files are (default: target/bench-data)")
    parser.add_argument("--charts", type=Path, default=REPO / "docs" / "charts",
                        help="where the SVG files go (default: docs/charts)")
    parser.add_argument("--data", type=Path, default=REPO / "docs" / "data",
                        help="where the CSV files read are copied (default: docs/data)")
    args = parser.parse_args(argv)

    # Read and check everything before writing anything.
    data, paths, provenance = {}, {}, read_provenance(args.source)
    for bench in BENCHES:
        path = args.source / f"{bench}.csv"
        if not path.is_file():
            print(f"note: no {shown(path)} (skipped)")
            continue
        data[bench], paths[bench] = read_csv(path), path
        print(f"read  {shown(path)} ({len(data[bench])} rows)")
        if bench not in provenance:  # HEAD, marked if crates/ or src/ changed (as the benches do)
            mtime = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
            commit = git("rev-parse", "--short", "HEAD")
            dirty = commit and git("status", "--porcelain", "--", "crates", "src")
            provenance[bench] = (mtime.strftime("%Y-%m-%d"), commit + ("+changes" if dirty else ""))
    if not data:
        print(f"error: no bench data in {args.source}; run the benches first:\n  cargo bench "
              "--bench thread_pool && cargo bench --bench process_pool && cargo bench --bench "
              "workloads && python3 scripts/charts.py", file=sys.stderr)
        return 1

    groups = {GROUPS[b]: [(v, *t) for v, _, *t in section(data[b], "per_task")]
              for b in GROUPS if b in data}
    charts = [(per_task_chart, {k: v for k, v in groups.items() if v},  # (draw, data, benches, file)
               [b for b in GROUPS if groups.get(GROUPS[b])], "per_task.svg")]
    series = {name: {} for name in TITLES}  # section -> variant -> [(x, median, low, high)]
    for name in TITLES:
        for variant, *point in section(data.get("workloads", []), name, "ms"):
            series[name].setdefault(variant, []).append(point)
        charts.append((partial(time_chart, name), series[name], ["workloads"], f"{name}.svg"))
    fib = {v: {x: (m, lo, hi) for x, m, lo, hi in points}
           for v, points in series["fib_workers"].items()}
    speedups = {}  # variant -> [(x, speed-up of the median, of the slowest, of the fastest run)]
    for variant, serial, _ in SPEEDUP:
        if variant in fib and serial in fib:
            base = {x: m for x, (m, _, _) in fib[serial].items()}
            speedups[variant] = [(x, s / m, hi and s / hi, lo and s / lo)
                                 for x, (m, lo, hi) in fib[variant].items()
                                 for s in [base.get(x, next(iter(base.values())))]]
    charts.append((speedup_chart, speedups, ["workloads"], "fib_speedup.svg"))

    # The data next to the charts, then the charts.
    args.data.mkdir(parents=True, exist_ok=True)
    kept = read_provenance(args.data) if args.data.resolve() != args.source.resolve() else {}
    for bench, path in paths.items():
        if path.resolve() != (args.data / path.name).resolve():
            shutil.copyfile(path, args.data / path.name)
            print(f"wrote {shown(args.data / path.name)}")
        kept[bench] = provenance[bench]
    (args.data / "provenance.csv").write_text("file,date,commit\n" + "".join(
        f"{b}.csv,{d},{c}\n" for b, (d, c) in sorted(kept.items())), encoding="utf-8")
    print(f"wrote {shown(args.data / 'provenance.csv')}")
    args.charts.mkdir(parents=True, exist_ok=True)
    for draw, chart_data, benches, name in charts:
        if not chart_data:
            print(f"note: {name} skipped (no data for it)")
            continue
        fig = draw(chart_data, footnote([(shown(args.data / f"{b}.csv"), *provenance[b])
                                         for b in benches]))
        fig.savefig(args.charts / name, metadata={"Date": None})
        plt.close(fig)
        print(f"wrote {shown(args.charts / name)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DataError as e:
        print(f"error: malformed bench data: {e}", file=sys.stderr)
        sys.exit(2)
