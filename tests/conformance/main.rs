//! Conformance suite: a port of CPython's `Lib/test/test_concurrent_futures/`.
//!
//! Layout (test names follow the CPython test each one ports):
//! * `test_future::*`: `test_future.py`, futures with no executor.
//! * `<executor>::executor::*`, `::test_wait::*`, `::test_as_completed::*`,
//!   `::test_shutdown::*`, `::test_init::*`, `::test_deadlock::*`: the
//!   generic suite in `generic/`, written once for any `Executor` and
//!   instantiated per executor by [`executor_suite!`]; `::map_unordered::*`
//!   and `::test_panics::*` (not in CPython's suite) follow the same rules.
//! * `test_thread_pool::*`: what only a thread pool can check (thread
//!   names, worker counts, closures, initializer closures, waits from
//!   inside the pool); `test_closures::*`: its own `submit`, `map` and
//!   `map_unordered` over closures and plain types.
//!
//! Adding an executor is one `executor_suite!` line at the bottom of this
//! file. Its tasks are the plain functions of `tasks.rs`.

#[path = "../support/mod.rs"]
mod support;

mod generic;
mod tasks;
mod test_closures;
mod test_future;
mod test_thread_pool;

/// One `#[test]` per listed generic test, each calling
/// `crate::generic::<module>::<test>(super::<factory>)`.
macro_rules! suite_module {
    ($factory:ident, $module:ident: [$($test:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    crate::generic::$module::$test(super::$factory);
                }
            )*
        }
    };
}

/// Instantiates the generic suite for one executor:
///
/// ```ignore
/// executor_suite!(
///     thread_pool,
///     make: |workers| ThreadPoolExecutor::builder().max_workers(workers).build(),
///     make_with_initializer: |workers, init| { /* builder with init */ },
/// );
/// ```
///
/// `make` gets `max_workers` and returns `Result<impl Executor, ConfigError>`;
/// `make_with_initializer` also gets the initializer, a plain
/// `fn(()) -> Result<(), String>` (optional: leave it out to skip `test_init`).
macro_rules! executor_suite {
    ($name:ident, make: $make:expr, make_with_initializer: $init:expr $(,)?) => {
        executor_suite!(@with_init $name, $make, $init, [test_no_initializer]);
    };
    // Workers that outlive a pool (the MPI pool's, see its docs) keep what
    // an earlier pool's initializer set, so the control without an
    // initializer does not apply.
    (
        $name:ident,
        make: $make:expr,
        make_with_initializer: $init:expr,
        workers_outlive_pools $(,)?
    ) => {
        executor_suite!(@with_init $name, $make, $init, []);
    };
    (@with_init $name:ident, $make:expr, $init:expr, [$($control:ident)*]) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn make(
                workers: usize,
            ) -> Result<impl concurrent_futures::Executor, concurrent_futures::ConfigError> {
                ($make)(workers)
            }

            fn make_with_initializer(
                workers: usize,
                init: crate::generic::InitFn,
            ) -> Result<impl concurrent_futures::Executor, concurrent_futures::ConfigError> {
                ($init)(workers, init)
            }

            executor_suite!(@common make);

            mod test_init {
                #[test]
                fn test_initializer() {
                    crate::generic::test_init::test_initializer(super::make_with_initializer);
                }

                #[test]
                fn test_failing_initializer() {
                    crate::generic::test_init::test_failing_initializer(
                        super::make_with_initializer,
                    );
                }

                $(
                    #[test]
                    fn $control() {
                        crate::generic::test_init::$control(super::make);
                    }
                )*
            }
        }
    };
    ($name:ident, make: $make:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn make(
                workers: usize,
            ) -> Result<impl concurrent_futures::Executor, concurrent_futures::ConfigError> {
                ($make)(workers)
            }

            executor_suite!(@common make);
            suite_module!(make, test_init: [test_no_initializer]);
        }
    };
    (@common $make:ident) => {
        suite_module!($make, executor: [
            test_submit,
            test_map,
            test_map_exception,
            test_map_timeout_from_callable,
            test_map_timeout,
            test_map_close,
            test_map_buffersize_value_validation,
            test_map_buffersize,
            test_map_buffersize_on_multiple_iterables,
            test_map_buffersize_on_infinite_iterable,
            test_map_buffersize_on_multiple_infinite_iterables,
            test_map_buffersize_on_empty_iterable,
            test_map_buffersize_without_iterable,
            test_map_buffersize_when_buffer_is_full,
            test_map_buffersize_refills_one_per_next,
            test_shutdown_race_issue12456,
            test_max_workers_negative,
            test_free_reference,
            test_map_submits_without_iteration,
            test_executor_map_current_future_cancel,
        ]);
        suite_module!($make, test_wait: [
            test_20369,
            test_first_completed,
            test_first_completed_some_already_completed,
            test_first_exception,
            test_first_exception_some_already_complete,
            test_first_exception_one_already_failed,
            test_all_completed,
            test_timeout,
            test_pending_calls_race,
        ]);
        suite_module!($make, test_as_completed: [
            test_no_timeout,
            test_future_times_out,
            test_duplicate_futures,
            test_free_reference_yielded_future,
            test_correct_timeout_exception_msg,
        ]);
        suite_module!($make, test_shutdown: [
            test_run_after_shutdown,
            test_hang_issue12364,
            test_cancel_futures,
            test_hang_gh83386,
            test_hang_gh94440,
            test_context_manager_shutdown,
        ]);
        suite_module!($make, map_unordered: [
            test_every_item_once,
            test_done_first,
            test_failing_item,
            test_endless_input,
            test_drop_cancels_queued,
            test_timeout,
        ]);
        suite_module!($make, test_panics: [test_panic_payload]);
        suite_module!($make, test_deadlock: [
            test_error_during_func_exec_on_worker,
            test_shutdown_deadlock,
            test_crash_big_data,
            test_gh105829_should_not_deadlock_if_wakeup_pipe_full,
        ]);
    };
}

use concurrent_futures::ThreadPoolExecutor;

executor_suite!(
    thread_pool,
    make: |workers| ThreadPoolExecutor::builder().max_workers(workers).build(),
    make_with_initializer: |workers, init: generic::InitFn| {
        ThreadPoolExecutor::builder()
            .max_workers(workers)
            .initializer(move || init(()))
            .build()
    },
);

use concurrent_futures::{ProcessPoolExecutor, StartMethod};

executor_suite!(
    process_pool_spawn,
    make: |workers| ProcessPoolExecutor::builder().max_workers(workers).build(),
    make_with_initializer: |workers, init: generic::InitFn| {
        ProcessPoolExecutor::builder()
            .max_workers(workers)
            .initializer(init, ())
            .build()
    },
);

executor_suite!(
    process_pool_fork,
    make: |workers| {
        ProcessPoolExecutor::builder()
            .max_workers(workers)
            .start_method(StartMethod::Fork)
            .allow_fork_with_threads(true)
            .build()
    },
    make_with_initializer: |workers, init: generic::InitFn| {
        ProcessPoolExecutor::builder()
            .max_workers(workers)
            .start_method(StartMethod::Fork)
            .allow_fork_with_threads(true)
            .initializer(init, ())
            .build()
    },
);

executor_suite!(
    process_pool_forkserver,
    make: |workers| {
        ProcessPoolExecutor::builder()
            .max_workers(workers)
            .start_method(StartMethod::ForkServer)
            .build()
    },
    make_with_initializer: |workers, init: generic::InitFn| {
        ProcessPoolExecutor::builder()
            .max_workers(workers)
            .start_method(StartMethod::ForkServer)
            .initializer(init, ())
            .build()
    },
);

#[cfg(feature = "mpi")]
use concurrent_futures::MpiPoolExecutor;

// Dynamic mode when run as it is; static mode under
// `mpirun -n 3 <this binary> --test-threads=1 mpi_pool` (one pool at a time).
#[cfg(feature = "mpi")]
executor_suite!(
    mpi_pool,
    make: |workers| MpiPoolExecutor::builder().max_workers(workers).build(),
    make_with_initializer: |workers, init: generic::InitFn| {
        MpiPoolExecutor::builder()
            .max_workers(workers)
            .initializer(init, ())
            .build()
    },
    workers_outlive_pools,
);
