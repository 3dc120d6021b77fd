//! Helpers shared by the `thread_pool` and `process_pool` benches:
//! statistics, formatting, the machine description, the CPython
//! interpreter lookup and the settings from the environment. Included from
//! each bench with `#[path = "common/mod.rs"] mod common;` (a subdirectory,
//! so cargo does not take it for a bench of its own).

#![allow(dead_code)]

use std::collections::HashMap;
use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// The `permille`/1000 quantile by nearest rank, as the Python script.
pub fn nearest_rank(sorted: &[u64], permille: usize) -> u64 {
    let rank = (sorted.len() * permille).div_ceil(1000).max(1);
    sorted[rank - 1]
}

pub fn median_p99(mut samples: Vec<u64>) -> (f64, f64) {
    samples.sort_unstable();
    (
        nearest_rank(&samples, 500) as f64,
        nearest_rank(&samples, 990) as f64,
    )
}

pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The median of `a[i] / b[i]`: a ratio taken pair by pair within each run.
pub fn paired(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(x, y)| x / y))
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

pub fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}")
    } else {
        "n/a".to_owned()
    }
}

pub fn fmt_times(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.1}x")
    } else {
        "n/a".to_owned()
    }
}

pub fn fmt_num(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "n/a".to_owned()
    }
}

pub fn fmt_runs(runs: &[f64], scale: f64) -> String {
    runs.iter()
        .map(|x| format!("{:.1}", x / scale))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `1000000` -> `1,000,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// For "lower is better" targets (`ratio <= target`).
pub fn verdict(ratio: f64, target: f64) -> String {
    if !ratio.is_finite() {
        "not measured".to_owned()
    } else if ratio <= target {
        "yes".to_owned()
    } else {
        format!(
            "**no**: {:.0} % slower than the target",
            (ratio / target - 1.0) * 100.0
        )
    }
}

/// For "at least this many times better" targets.
pub fn verdict_times(times: f64, target: f64, aim: f64) -> String {
    if !times.is_finite() {
        "not measured (no Python)".to_owned()
    } else if times < target {
        format!(
            "**no**: {:.0} % short ({:.1}x of {target:.0}x)",
            (1.0 - times / target) * 100.0,
            times
        )
    } else if times < aim {
        format!(
            "yes; the {aim:.0}x aim is missed by {:.0} %",
            (1.0 - times / aim) * 100.0
        )
    } else {
        "yes".to_owned()
    }
}

// ---------------------------------------------------------------------------
// CPython
// ---------------------------------------------------------------------------

/// The `key=value` fields of one `INFO` or `RESULT` line.
pub type Fields = HashMap<String, String>;

/// `PYTHON`, else `pyenv which python3` (the real interpreter: the pyenv
/// shim adds ~60 ms per start), else `python3`; with where it came from,
/// for the report.
pub fn python_interpreter() -> (String, &'static str) {
    match env::var("PYTHON") {
        Ok(p) if !p.trim().is_empty() => (p.trim().to_owned(), "$PYTHON"),
        _ => match Command::new("pyenv").args(["which", "python3"]).output() {
            Ok(out) if out.status.success() && !out.stdout.trim_ascii().is_empty() => (
                String::from_utf8_lossy(out.stdout.trim_ascii()).into_owned(),
                "`pyenv which python3`",
            ),
            _ => ("python3".to_owned(), "`python3` on PATH"),
        },
    }
}

/// The note on stderr when the interpreter cannot run the script.
pub fn note_no_python(exe: &str, source: &str, error: &str) {
    eprintln!(
        "note: no usable Python ({exe} from {source}: {error}); the CPython rows are skipped. \
         Set PYTHON=/path/to/python3 to include them."
    );
}

/// Runs `script` with `exe`; its stdout, or why it failed.
pub fn run_script(exe: &str, script: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(exe)
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| format!("could not start it: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{}: {}", out.status, stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `key=value` pairs of `text` (a line without its tag).
pub fn fields(text: &str) -> Fields {
    text.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// Machine description
// ---------------------------------------------------------------------------

pub fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The commit measured, and whether the working tree had changes.
pub fn git_state() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let commit = command_line("git", &["-C", dir, "rev-parse", "--short", "HEAD"]);
    let dirty = command_line(
        "git",
        &["-C", dir, "status", "--porcelain", "--", "crates", "src"],
    );
    match dirty.as_str() {
        "" => format!("commit {commit}"),
        "unknown" => format!("commit {commit} (working tree state unknown)"),
        _ => format!("commit {commit} + uncommitted changes in crates/ or src/"),
    }
}

/// The 1, 5 and 15 minute load averages: other work on the machine
/// shows here.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn today() -> String {
    command_line("date", &["-u", "+%Y-%m-%d"])
}

pub fn cpu_description() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown model".to_owned());
    format!("{cpus} CPUs (nproc), \"{model}\"")
}

/// The versions in Cargo.lock of the crates named in `crates`, in the
/// lock file's order.
pub fn crate_versions(crates: &[&str]) -> String {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .unwrap_or_default();
    let mut found = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"'));
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take())
            && crates.contains(&n)
        {
            found.push(format!("{n} {}", v.trim_matches('"')));
        }
    }
    if found.is_empty() {
        "unknown (no Cargo.lock)".to_owned()
    } else {
        found.join(", ")
    }
}

// ---------------------------------------------------------------------------
// Settings and the report file
// ---------------------------------------------------------------------------

/// `file_name` in the target directory (`CARGO_TARGET_DIR` if set).
pub fn report_path(file_name: &str) -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join(file_name)
}

/// Prints the paired phase's markdown and, on a full run, writes it to
/// [`report_path`]`(file_name)` as well.
pub fn publish_report(markdown: &str, full: bool, file_name: &str) {
    println!("---- markdown for docs/PERFORMANCE.md ----\n{markdown}---- end ----");
    if full {
        let path = report_path(file_name);
        match std::fs::write(&path, markdown) {
            Ok(()) => println!("(also written to {})", path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
    }
}

/// The whole number in the environment variable `name`, else `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    match env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// The machine table of the report, from its header to the load average:
/// CPU, Rust, the library's commit, `codec` if given, the versions of
/// `crates`, `python` (how the CPython rows were run; `None`: skipped),
/// `command`, and the load averages before and after the paired runs.
pub fn write_machine_rows(
    md: &mut String,
    codec: Option<&str>,
    crates: &[&str],
    python: Option<String>,
    command: &str,
    load: &(String, String),
) {
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| CPU | {} |", cpu_description());
    let _ = writeln!(md, "| Rust | {} |", command_line("rustc", &["--version"]));
    let _ = writeln!(md, "| Library | {} |", git_state());
    if let Some(codec) = codec {
        let _ = writeln!(md, "| Codec | {codec} |");
    }
    let _ = writeln!(md, "| Crates | {} |", crate_versions(crates));
    match python {
        Some(py) => {
            let _ = writeln!(md, "| Python | {py} |");
        }
        None => {
            let _ = writeln!(md, "| Python | none found: CPython rows skipped |");
        }
    }
    let _ = writeln!(md, "| Command | `{command}` |");
    let _ = writeln!(
        md,
        "| Load average (1/5/15 min) | {} before the paired runs, {} after |",
        load.0, load.1
    );
}

// ---------------------------------------------------------------------------
// Machine-readable results, for `scripts/charts.py`
// ---------------------------------------------------------------------------

/// One figure of a bench, as a row of `target/bench-data/<bench>.csv`.
///
/// `section` names the table (`per_task`, `fib_workers`, ...), `variant` the
/// row's executor or peer, `x` the series' x value (a worker count; empty
/// when the figure is not part of a series), `median` the figure, `low` and
/// `high` the smallest and largest of the runs it is the median of, `unit`
/// its unit (`ns`, `us`, `ms`, `MiB/s`).
pub struct DataRow {
    pub section: &'static str,
    pub variant: String,
    pub x: Option<f64>,
    pub median: f64,
    pub low: f64,
    pub high: f64,
    pub unit: &'static str,
}

impl DataRow {
    /// A row whose median, low and high are taken from `runs`.
    pub fn from_runs(
        section: &'static str,
        variant: impl Into<String>,
        x: Option<f64>,
        runs: &[f64],
        unit: &'static str,
    ) -> DataRow {
        let finite = runs.iter().copied().filter(|v| v.is_finite());
        DataRow {
            section,
            variant: variant.into(),
            x,
            median: median(runs.iter().copied()),
            low: finite.clone().fold(f64::INFINITY, f64::min),
            high: finite.fold(f64::NEG_INFINITY, f64::max),
            unit,
        }
    }
}

/// Writes `rows` to `target/bench-data/<bench>.csv` (header
/// `section,variant,x,median,low,high,unit`), the input of
/// `python3 scripts/charts.py`. Called on full runs only.
pub fn write_data(bench: &str, rows: &[DataRow]) {
    let mut csv = String::from("section,variant,x,median,low,high,unit\n");
    let num = |v: f64| {
        if v.is_finite() {
            format!("{v}")
        } else {
            String::new()
        }
    };
    for r in rows {
        let _ = writeln!(
            csv,
            "{},\"{}\",{},{},{},{},{}",
            r.section,
            r.variant.replace('"', "\"\""),
            r.x.map(num).unwrap_or_default(),
            num(r.median),
            num(r.low),
            num(r.high),
            r.unit
        );
    }
    let path = report_path("bench-data").join(format!("{bench}.csv"));
    let written = std::fs::create_dir_all(path.parent().expect("a parent"))
        .and_then(|()| std::fs::write(&path, csv));
    match written {
        Ok(()) => println!("(data for the charts written to {})", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
