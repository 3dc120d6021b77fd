//! After pools of both start methods have run work, lost workers to
//! crashes, retired them and shut down: no child process is left (zombie
//! or not) and the parent holds exactly the descriptors it held before.
//!
//! One test in its own binary, so that no other test's pools or files
//! change the counts while it looks.

use concurrent_futures::{Executor, ProcessPoolExecutor, StartMethod, TaskError, task};

mod support;

use support::{children, open_fds};

#[task]
fn square(x: u64) -> u64 {
    x * x
}

#[task]
fn exit_now(code: i32) -> u8 {
    std::process::exit(code)
}

#[test]
fn no_zombie_and_no_leaked_descriptor_after_the_pools_are_gone() {
    // Warm up what the process keeps for good (std's lazily opened fds).
    let _ = std::env::current_exe();
    let fds_before = open_fds();
    assert!(
        children().is_empty(),
        "children before the test: {:?}",
        children()
    );
    for method in [StartMethod::Spawn, StartMethod::Fork] {
        let pool = ProcessPoolExecutor::builder()
            .max_workers(2)
            .start_method(method)
            .allow_fork_with_threads(true)
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
        assert!(
            children().is_empty(),
            "{method:?}: children left: {:?}",
            children()
        );
        assert_eq!(open_fds(), fds_before, "{method:?}: descriptors leaked");
    }
}
