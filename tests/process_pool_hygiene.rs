//! After pools of both start methods have run work, lost workers to
//! crashes, retired them, shut down, or had their workers terminated or
//! killed: no child process is left (zombie or not) and the parent holds
//! exactly the descriptors it held before.
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
fn nap(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
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
    for method in [
        StartMethod::Spawn,
        StartMethod::Fork,
        StartMethod::ForkServer,
    ] {
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

        // terminate_workers() / kill_workers() on busy workers, then drop.
        for stop in [
            ProcessPoolExecutor::terminate_workers,
            ProcessPoolExecutor::kill_workers,
        ] {
            let pool = ProcessPoolExecutor::builder()
                .max_workers(2)
                .start_method(method)
                .allow_fork_with_threads(true)
                .build()
                .unwrap();
            let long: Vec<_> = (0..4).map(|_| pool.submit(nap, 60_000).unwrap()).collect();
            while !long.iter().take(2).all(|f| f.running()) {
                std::thread::yield_now();
            }
            stop(&pool);
            for fut in &long {
                let err = fut.result().map(drop).unwrap_err();
                assert!(
                    matches!(err, TaskError::Broken { .. } | TaskError::Cancelled),
                    "{method:?}: {err:?}"
                );
            }
            drop(pool);
            assert!(
                children().is_empty(),
                "{method:?}: children left after terminating: {:?}",
                children()
            );
            assert_eq!(open_fds(), fds_before, "{method:?}: descriptors leaked");
        }
    }
}
