//! After pools of both start methods have run work, lost workers to
//! crashes, retired them and shut down: no child process is left (zombie
//! or not) and the parent holds exactly the descriptors it held before.
//!
//! One test in its own binary, so that no other test's pools or files
//! change the counts while it looks.

use std::collections::BTreeSet;

use concurrent_futures::{Executor, ProcessPoolExecutor, StartMethod, TaskError, task};

#[task]
fn square(x: u64) -> u64 {
    x * x
}

#[task]
fn exit_now(code: i32) -> u8 {
    std::process::exit(code)
}

fn open_fds() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            // The listing's own directory handle comes and goes.
            let target = target.display().to_string();
            (!target.ends_with("/fd")).then(|| format!("{:?} -> {target}", e.file_name()))
        })
        .collect()
}

/// Every child of every thread of this process.
fn children() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect()
}

#[test]
fn no_zombie_and_no_leaked_descriptor_after_the_pools_are_gone() {
    // Warm up what the process keeps for good (std's lazily opened fds).
    let _ = std::env::current_exe();
    let fds_before = open_fds();
    assert_eq!(children(), Vec::<String>::new(), "children before the test");
    for method in [StartMethod::Spawn, StartMethod::Fork] {
        let pool = ProcessPoolExecutor::builder()
            .max_workers(2)
            .start_method(method)
            .max_tasks_per_child(50)
            .build()
            .unwrap();
        let sum: u64 = pool.map(square, 0..200).map(Result::unwrap).sum();
        assert_eq!(sum, (0..200_u64).map(|x| x * x).sum());
        for code in [3, 4] {
            match pool.submit(exit_now, code).unwrap().into_result() {
                Err(TaskError::WorkerDied { exit_code, .. }) => assert_eq!(exit_code, Some(code)),
                other => panic!("{method:?}: expected a dead worker, got {other:?}"),
            }
        }
        assert_eq!(pool.submit(square, 12).unwrap().into_result(), Ok(144));
        drop(pool);
        assert_eq!(
            children(),
            Vec::<String>::new(),
            "{method:?}: children left"
        );
        assert_eq!(open_fds(), fds_before, "{method:?}: descriptors leaked");
    }
}
