//! The MPI pool against `mpi4py.futures` (on the same Open MPI) and
//! against our own process pool, in the same run, 2 workers each:
//!
//! * **start-up**: from before MPI starts (ours: `main`; mpi4py: before
//!   `import mpi4py`) to the first result: MPI's start, the workers'
//!   spawn, one task (dynamic mode; the process pool: `build` to its first
//!   result);
//! * **per task**: N no-op tasks submitted, then every result in order;
//! * **map**: `map` with chunksize 1000, per item;
//! * **idle round trip**: one `submit` then `result()` at a time; the
//!   median.
//!
//! ```text
//! cargo bench --features mpi --bench mpi_pool
//! ```
//!
//! Each variant runs in a fresh process (MPI starts once per process):
//! ours dynamic (this binary as a singleton), ours static (`mpirun -n 3`
//! of this binary), our process pool, and mpi4py
//! (`benches/python/mpi_bench.py`, with the interpreter that
//! `pyenv which python3` names; `PYTHON` overrides it). Runs are
//! interleaved; ratios are taken run by run and their medians reported.
//! Open MPI as root needs `OMPI_ALLOW_RUN_AS_ROOT=1
//! OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`, and 2 cores
//! `OMPI_MCA_rmaps_base_oversubscribe=1`.
//!
//! | variable | default | what |
//! |---|---|---|
//! | `CF_BENCH_RUNS` | 5 | paired runs |
//! | `CF_BENCH_TASKS` | 20000 | no-op tasks per run, ours |
//! | `CF_BENCH_PY_TASKS` | 5000 | the same, mpi4py |
//! | `CF_BENCH_MAP_ITEMS` | 1000000 | map items per run (chunksize 1000), ours |
//! | `CF_BENCH_PY_MAP_ITEMS` | 200000 | the same, mpi4py |
//! | `CF_BENCH_CALLS` | 2000 | idle round trips per run, ours |
//! | `CF_BENCH_PY_CALLS` | 300 | the same, mpi4py |

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::process::Command;
use std::time::{Duration, Instant};

use concurrent_futures::{
    Executor, MapOptions, MpiPoolExecutor, ProcessPoolExecutor, TaskFuture, task,
};

#[path = "common/mod.rs"]
mod common;

use common::{
    env_number, fields, fmt_num, fmt_runs, fmt_times, load_average, median, paired,
    python_interpreter, run_script, write_machine_rows,
};

/// Which variant this process measures (a child of the driver).
const ROLE: &str = "CF_BENCH_MPI_ROLE";

#[task]
fn noop(x: u64) -> u64 {
    x
}

/// What one variant measured in one run.
#[derive(Clone, Copy, Default)]
struct Figures {
    startup_ns: f64,
    per_task_ns: f64,
    map_ns: f64,
    rt_ns: f64,
}

impl Figures {
    fn line(&self) -> String {
        format!(
            "RESULT startup_ns={:.0} per_task_ns={:.1} map_ns={:.2} rt_ns={:.0}",
            self.startup_ns, self.per_task_ns, self.map_ns, self.rt_ns
        )
    }

    fn parse(out: &str) -> Option<Figures> {
        let line = out.lines().find_map(|l| l.strip_prefix("RESULT "))?;
        let f = fields(line);
        let get = |k: &str| f.get(k).and_then(|v| v.parse::<f64>().ok());
        Some(Figures {
            startup_ns: get("startup_ns")?,
            per_task_ns: get("per_task_ns")?,
            map_ns: get("map_ns")?,
            rt_ns: get("rt_ns")?,
        })
    }
}

/// Measures `pool` (whose first result came `startup` after the start).
fn measure<E: Executor>(pool: &E, startup: Duration) -> Figures {
    let tasks = env_number("CF_BENCH_TASKS", 20_000);
    let items = env_number("CF_BENCH_MAP_ITEMS", 1_000_000);
    let calls = env_number("CF_BENCH_CALLS", 2_000);
    for i in 0..200 {
        pool.submit(noop, i).unwrap().into_result().unwrap();
    }
    let t = Instant::now();
    let futures: Vec<TaskFuture<u64>> = (0..tasks).map(|i| pool.submit(noop, i).unwrap()).collect();
    for f in &futures {
        f.result().unwrap();
    }
    let per_task_ns = t.elapsed().as_nanos() as f64 / tasks as f64;
    drop(futures);
    let t = Instant::now();
    let opts = MapOptions::new().chunksize(NonZeroUsize::new(1000).unwrap());
    let n = pool
        .map_with(noop, 0..items, opts)
        .filter(Result::is_ok)
        .count();
    assert_eq!(n as u64, items);
    let map_ns = t.elapsed().as_nanos() as f64 / items as f64;
    let mut times: Vec<f64> = (0..calls)
        .map(|i| {
            let t = Instant::now();
            pool.submit(noop, i).unwrap().into_result().unwrap();
            t.elapsed().as_nanos() as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Figures {
        startup_ns: startup.as_nanos() as f64,
        per_task_ns,
        map_ns,
        rt_ns: median(times),
    }
}

/// A child: measures one variant and prints its RESULT line.
fn child(role: &str, start: Instant) {
    let figures = match role {
        "mpi" => {
            let pool = MpiPoolExecutor::builder().max_workers(2).build().unwrap();
            pool.submit(noop, 0).unwrap().into_result().unwrap();
            measure(&pool, start.elapsed())
        }
        "process" => {
            let t = Instant::now();
            let pool = ProcessPoolExecutor::builder()
                .max_workers(2)
                .build()
                .unwrap();
            pool.submit(noop, 0).unwrap().into_result().unwrap();
            measure(&pool, t.elapsed())
        }
        other => panic!("unknown role {other}"),
    };
    println!("{}", figures.line());
}

/// The variants, in the order of the table.
const VARIANTS: [&str; 4] = [
    "ours, `MpiPoolExecutor`, dynamic (spawn)",
    "ours, `MpiPoolExecutor`, static (`mpirun -n 3`)",
    "ours, `ProcessPoolExecutor` (Spawn)",
    "mpi4py.futures `MPIPoolExecutor`, dynamic (spawn)",
];

fn run_variant(index: usize, python: &str) -> Option<Figures> {
    let me = std::env::current_exe().unwrap();
    let out = match index {
        0 => Command::new(&me).env(ROLE, "mpi").output(),
        1 => Command::new("mpirun")
            .args(["-n", "3"])
            .arg(&me)
            .env(ROLE, "mpi")
            .output(),
        2 => Command::new(&me).env(ROLE, "process").output(),
        _ => {
            let tasks = env_number("CF_BENCH_PY_TASKS", 5_000).to_string();
            let items = env_number("CF_BENCH_PY_MAP_ITEMS", 200_000).to_string();
            let calls = env_number("CF_BENCH_PY_CALLS", 300).to_string();
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/mpi_bench.py");
            let args = ["--tasks", &tasks, "--map-items", &items, "--calls", &calls];
            return match run_script(python, script, &args) {
                Ok(out) => Figures::parse(&out),
                Err(e) => {
                    eprintln!("note: mpi4py did not run ({e}); its row is skipped");
                    None
                }
            };
        }
    };
    let out = out.ok()?;
    let figures = Figures::parse(&String::from_utf8_lossy(&out.stdout));
    if figures.is_none() {
        eprintln!(
            "note: {} printed no result ({}): {}",
            VARIANTS[index],
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    figures
}

fn main() {
    let start = Instant::now();
    if let Ok(role) = std::env::var(ROLE) {
        child(&role, start);
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --benches` runs benches without --bench: nothing to do.
        return;
    }
    let runs = env_number("CF_BENCH_RUNS", 5) as usize;
    let (python, source) = python_interpreter();
    let load_before = load_average();
    let mut results: Vec<Vec<Option<Figures>>> = vec![Vec::new(); VARIANTS.len()];
    for run in 0..runs {
        println!("run {}:", run + 1);
        // Rotate the order by one per run.
        for k in 0..VARIANTS.len() {
            let index = (k + run) % VARIANTS.len();
            let f = run_variant(index, &python);
            if let Some(f) = f {
                println!(
                    "  {}: start {:.1} ms, {:.2} us/task, map {:.1} ns/item, rt {:.1} us",
                    VARIANTS[index],
                    f.startup_ns / 1e6,
                    f.per_task_ns / 1e3,
                    f.map_ns,
                    f.rt_ns / 1e3
                );
            }
            results[index].push(f);
        }
    }
    let load = (load_before, load_average());
    let column = |index: usize, get: fn(&Figures) -> f64| -> Vec<f64> {
        results[index]
            .iter()
            .map(|f| f.as_ref().map_or(f64::NAN, get))
            .collect()
    };
    let mut md = String::new();
    let _ = writeln!(
        md,
        "<!-- generated by `cargo bench --features mpi --bench mpi_pool` (benches/mpi_pool.rs) on {} -->\n",
        common::today()
    );
    let _ = writeln!(md, "#### Machine and command (MPI pool)\n");
    write_machine_rows(
        &mut md,
        None,
        &["mpi", "mpi-sys"],
        Some(format!(
            "{} ({source}), mpi4py {}, {}",
            common::command_line(&python, &["--version"]),
            common::command_line(&python, &["-c", "import mpi4py; print(mpi4py.__version__)"]),
            common::command_line("mpirun", &["--version"])
                .lines()
                .next()
                .unwrap_or("")
        )),
        "cargo bench --features mpi --bench mpi_pool",
        &load,
    );
    let _ = writeln!(
        md,
        "| Runs | {runs} paired runs; in each run every variant runs once in a fresh process, the order rotated by one per run |\n"
    );
    let _ = writeln!(
        md,
        "#### 2 workers: start-up to the first result, per task (chunksize 1), per item (`map`, chunksize 1000), idle round trip\n"
    );
    let _ = writeln!(
        md,
        "\"mpi4py / this\" is mpi4py.futures' figure over the row's, run by run (the median of those ratios).\n"
    );
    let _ = writeln!(
        md,
        "| Pool | start-up (ms) | mpi4py / this | µs/task | mpi4py / this | ns/item | mpi4py / this | round trip (µs) | mpi4py / this | runs, µs/task |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let py = VARIANTS.len() - 1;
    for (index, name) in VARIANTS.iter().enumerate() {
        let startup = column(index, |f| f.startup_ns);
        let task = column(index, |f| f.per_task_ns);
        let map = column(index, |f| f.map_ns);
        let rt = column(index, |f| f.rt_ns);
        let ratio = |mine: &[f64], get: fn(&Figures) -> f64| {
            if index == py {
                "-".to_owned()
            } else {
                fmt_times(paired(&column(py, get), mine))
            }
        };
        let _ = writeln!(
            md,
            "| {name} | **{}** | {} | **{}** | {} | **{}** | {} | **{}** | {} | {} |",
            fmt_num(median(startup.iter().copied()) / 1e6, 1),
            ratio(&startup, |f| f.startup_ns),
            fmt_num(median(task.iter().copied()) / 1e3, 2),
            ratio(&task, |f| f.per_task_ns),
            fmt_num(median(map.iter().copied()), 1),
            ratio(&map, |f| f.map_ns),
            fmt_num(median(rt.iter().copied()) / 1e3, 1),
            ratio(&rt, |f| f.rt_ns),
            fmt_runs(&task, 1e3),
        );
    }
    println!("---- markdown for docs/PERFORMANCE.md ----\n{md}---- end ----");
}
