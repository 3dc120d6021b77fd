//! The seeds' CPU-bound fib on an MPI pool (feature `mpi`): the same
//! `run` as `cpu_bound_fib`, written once against the `Executor` trait,
//! then checked against a serial run.
//!
//! ```text
//! # dynamic: this program spawns 3 workers with MPI_Comm_spawn
//! cargo run --release --features mpi --example mpi_fib -- 30..38 3
//! # static: mpirun starts 4 ranks; rank 0 runs main, ranks 1-3 are the pool
//! cargo build --release --features mpi --example mpi_fib
//! mpirun -n 4 target/release/examples/mpi_fib 30..38
//! ```
//!
//! On a cluster, `mpirun --hostfile hosts -n 16 …` or `srun -n 16 …` (static), or
//! the builder's `.info("hostfile", "hosts")` (dynamic): see the README,
//! "On a cluster".

use std::time::Instant;

use concurrent_futures::{Executor, MpiPoolExecutor, TaskError, as_completed, task};

/// The seeds' recursive Fibonacci (`fib(1) = fib(2) = 1`).
#[task]
fn fib(n: u32) -> u64 {
    if n <= 2 { 1 } else { fib(n - 1) + fib(n - 2) }
}

/// Written once against the trait: the same code drives every pool.
fn run<E: Executor>(
    pool: &E,
    name: &str,
    range: std::ops::Range<u32>,
) -> Result<Vec<u64>, TaskError> {
    let start = Instant::now();
    let futures = range
        .map(|n| pool.submit(fib, n))
        .collect::<Result<Vec<_>, _>>()?;
    for done in as_completed(&futures, None) {
        println!("  {name}: exe result {}", done?.result()?);
    }
    println!("{name}: {:.3} s", start.elapsed().as_secs_f64());
    futures.into_iter().map(|f| f.into_result()).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First thing: on a static launch's other ranks this never returns.
    let mut args = std::env::args().skip(1);
    let range = match args.next() {
        Some(r) => {
            let (from, to) = r.split_once("..").ok_or("the range is FROM..TO")?;
            from.parse()?..to.parse()?
        }
        None => 30..38,
    };
    let workers = args.next().map_or(Ok(3), |w| w.parse())?;
    let pool = MpiPoolExecutor::builder().max_workers(workers).build()?;
    let mode = if MpiPoolExecutor::is_static_launch() == Some(true) {
        "static"
    } else {
        "dynamic"
    };
    println!("MPI pool, {mode} launch, {} workers", pool.max_workers());
    let pooled = run(&pool, "mpi", range.clone())?;
    let start = Instant::now();
    let serial: Vec<u64> = range.map(fib).collect();
    println!("serial: {:.3} s", start.elapsed().as_secs_f64());
    assert_eq!(pooled, serial, "the pool's results are the serial ones");
    Ok(())
}
