//! Port of CPython's `executor.py` (`ExecutorTest`), plus the scenarios of
//! `test_thread_pool.py` and `test_pool.py` that hold for any executor.
//!
//! Not ported:
//! * `test_submit_keyword`: Rust has no keyword arguments; a task takes one
//!   argument (a tuple for several), and a wrong call does not compile.
//! * `test_map_buffersize_type_validation`: `buffersize` is a `usize`; a
//!   string or a float does not compile.
//! * `test_swallows_falsey_exceptions` (gh-132063): Python truthiness of
//!   exception objects; a Rust `Err` cannot be "falsey".
//! * `test_no_stale_references` needs a value whose drop the test can see,
//!   which a serde payload crossing into another process cannot report; it
//!   is ported for the thread pool in `test_thread_pool`.

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::time::Duration;

use concurrent_futures::{Executor, MapOptions, TaskError};

use super::{Make, WORKERS, expect_panicked};
use crate::support::{Gate, SHORT_TIMEOUT};
use crate::tasks;

fn chunked(n: usize) -> MapOptions {
    MapOptions::new().chunksize(NonZeroUsize::new(n).unwrap())
}

fn buffered(n: usize) -> MapOptions {
    MapOptions::new().buffersize(NonZeroUsize::new(n).unwrap())
}

pub fn test_submit<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let future = pool.submit(tasks::pow, (2, 8)).unwrap();
    assert_eq!(future.result(), Ok(&256));
}

pub fn test_map<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let args = || (0..10u64).map(|i| (i, i as u32));
    let expected: Vec<u64> = args().map(tasks::pow).collect();

    let got: Vec<u64> = pool.map(tasks::pow, args()).map(Result::unwrap).collect();
    assert_eq!(got, expected);

    // CPython checks chunksize=3; 4 and 16 add a short last chunk and a
    // single chunk bigger than the input.
    for chunksize in [3, 4, 16] {
        let got: Vec<u64> = pool
            .map_with(tasks::pow, args(), chunked(chunksize))
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, expected, "chunksize {chunksize}");
    }
}

/// CPython 3.15 (gh-108518): a failing item raises for that item only and
/// the iteration goes on. Ours: one `Err(Panicked)` for that item.
pub fn test_map_exception<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();

    let mut it = pool.map(tasks::divmod, [5, 5, 5, 5].into_iter().zip([2, 3, 0, 5]));
    assert_eq!(it.next(), Some(Ok((2, 1))));
    assert_eq!(it.next(), Some(Ok((1, 2))));
    expect_panicked(it.next().expect("an item"), "attempt to divide by zero");
    assert_eq!(it.next(), Some(Ok((1, 0))));
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);

    // With chunksize=3 the failing item is in the first chunk: the other
    // results of that chunk survive.
    let mut it = pool.map_with(
        tasks::divmod,
        [5, 5, 5, 5].into_iter().zip([2, 0, 3, 5]),
        chunked(3),
    );
    assert_eq!(it.next(), Some(Ok((2, 1))));
    expect_panicked(it.next().expect("an item"), "attempt to divide by zero");
    assert_eq!(it.next(), Some(Ok((1, 2))));
    assert_eq!(it.next(), Some(Ok((1, 0))));
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);
}

/// A task that fails with a message about a timeout is an ordinary item
/// failure, not the map's deadline, with or without a map timeout.
pub fn test_map_timeout_from_callable<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    for options in [MapOptions::new(), MapOptions::new().timeout(SHORT_TIMEOUT)] {
        let mut it = pool.map_with(tasks::fail_with_timeout_message, 0..4, options);
        assert_eq!(it.next(), Some(Ok(0)));
        expect_panicked(it.next().expect("an item"), "TimeoutError");
        assert_eq!(it.next(), Some(Ok(2)));
        assert_eq!(it.next(), Some(Ok(3)));
        assert_eq!(it.next(), None);
    }
}

/// CPython: `map(sleep, [0, 0, 6], timeout=5)` yields two results, then
/// `TimeoutError`, then the iterator is exhausted. Ours: the third item
/// blocks on a gate; the deadline yields one `Err(TimedOut)` and the
/// iterator ends (CPython raises, we yield an error item).
pub fn test_map_timeout<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let gate = Gate::new();
    let g = gate.gate_ref();
    let items = [("0", false), ("1", false), ("2", true)]
        .map(|(tag, wait)| (g.clone(), tag.to_owned(), wait));
    let mut it = pool.map_with(
        tasks::arrive_or_block,
        items,
        MapOptions::new().timeout(Duration::from_secs(2)),
    );
    // All three started; the first two have returned (or are returning).
    gate.wait_for_arrivals(3);
    assert_eq!(it.next(), Some(Ok("0".to_owned())));
    assert_eq!(it.next(), Some(Ok("1".to_owned())));
    match it.next() {
        Some(Err(TaskError::TimedOut {
            unfinished, total, ..
        })) => assert_eq!((unfinished, total), (1, 3)),
        other => panic!("expected the map deadline, got {other:?}"),
    }
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);
    drop(it);
    gate.open();
}

/// CPython: after `close()` the generator is exhausted. Ours: dropping the
/// `Map` is the close, and it cancels the tasks still queued, so they never
/// run. One worker makes "queued" deterministic.
///
/// An executor may send one queued task per worker ahead once the worker
/// has finished a task (CPython's call queue does; so does our process
/// pool): that task has started and cannot be cancelled. Nothing past it
/// may run.
pub fn test_map_close<E: Executor>(make: impl Make<E>) {
    let pool = make(1).unwrap();
    let gate = Gate::new();
    let g = gate.gate_ref();

    // Item 1 blocks the only worker; items 2 and 3 wait in the queue.
    let items = (0..4).map(|i| (g.clone(), i.to_string(), i == 1));
    let mut it = pool.map_with(tasks::arrive_or_block, items, buffered(4));
    assert_eq!(it.next(), Some(Ok("0".to_owned())));
    gate.wait_for_arrivals(2);
    drop(it);
    gate.open();
    pool.shutdown(true, false);
    let settled = gate.settled_arrivals();
    assert!(
        settled == ["0", "1"] || settled == ["0", "1", "2"],
        "only items 0, 1 (and 2, if sent ahead) may run: {settled:?}"
    );

    // The same with chunksize=3: chunk [3, 4, 5] is running (item 3 blocks),
    // chunk [6, 7, 8] is queued and cancelled.
    let pool = make(1).unwrap();
    let gate = Gate::new();
    let g = gate.gate_ref();
    let items = (0..9).map(|i| (g.clone(), i.to_string(), i == 3));
    let mut it = pool.map_with(
        tasks::arrive_or_block,
        items,
        chunked(3).buffersize(NonZeroUsize::new(3).unwrap()),
    );
    assert_eq!(it.next(), Some(Ok("0".to_owned())));
    gate.wait_for_arrivals(4);
    drop(it);
    gate.open();
    pool.shutdown(true, false);
    let settled = gate.settled_arrivals();
    let first: Vec<String> = (0..6).map(|i| i.to_string()).collect();
    let ahead: Vec<String> = (0..9).map(|i| i.to_string()).collect();
    assert!(
        settled == first || settled == ahead,
        "only the first two chunks (and the third, if sent ahead) may run: {settled:?}"
    );
}

/// CPython: `buffersize` of 0 or -1 is a `ValueError` raised by `map()`.
/// Ours: the sizes are `NonZeroUsize`, so neither 0 nor a negative size
/// can be written (the same holds for `chunksize`); what is left to check
/// is that the smallest sizes work.
pub fn test_map_buffersize_value_validation<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let got: Vec<u64> = pool
        .map_with(
            tasks::pow,
            [(3, 2), (2, 5)],
            buffered(1).chunksize(NonZeroUsize::MIN),
        )
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, [9, 32]);
}

pub fn test_map_buffersize<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    for buffersize in [1, 2, 4, 8] {
        let got: Vec<String> = pool
            .map_with(tasks::to_string, 0..4, buffered(buffersize))
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, ["0", "1", "2", "3"], "buffersize {buffersize}");
    }
}

pub fn test_map_buffersize_on_multiple_iterables<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    for buffersize in [1, 2, 4, 8] {
        let got: Vec<i64> = pool
            .map_with(tasks::add, (0..4).zip(0..4), buffered(buffersize))
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, [0, 2, 4, 6], "buffersize {buffersize}");
    }
}

pub fn test_map_buffersize_on_infinite_iterable<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let got: Vec<String> = pool
        .map_with(tasks::to_string, 0.., buffered(2))
        .take(3)
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, ["0", "1", "2"]);
}

pub fn test_map_buffersize_on_multiple_infinite_iterables<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let got: Vec<i64> = pool
        .map_with(tasks::add, (0..).zip(0..), buffered(2))
        .take(3)
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, [0, 2, 4]);
}

pub fn test_map_buffersize_on_empty_iterable<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let mut it = pool.map_with(tasks::to_string, Vec::new(), buffered(2));
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);
}

/// CPython: `map(str, buffersize=2)` with no iterable at all. Rust's `map`
/// takes exactly one iterator, so the closest form is an iterator that
/// yields nothing and was never anything else.
pub fn test_map_buffersize_without_iterable<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let mut it = pool.map_with(tasks::to_string, std::iter::empty(), buffered(2));
    assert_eq!(it.next(), None);
}

/// Exactly `buffersize` inputs are read before anything is consumed.
pub fn test_map_buffersize_when_buffer_is_full<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let mut ints = 0..4u64;
    let results = pool.map_with(tasks::to_string, ints.by_ref(), buffered(2));
    pool.shutdown(true, false);
    drop(results);
    assert_eq!(ints.next(), Some(2));
}

/// From `test_pool.py`: the window refills by one per `next()`.
///
/// Difference from CPython: CPython's `next()` submits one more task
/// *before* waiting for the oldest, so it reads `buffersize + k` inputs
/// after `k` calls. Ours keeps at most `buffersize` tasks in flight counting
/// the one being waited for, so it has read `buffersize + k - 1`.
pub fn test_map_buffersize_refills_one_per_next<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let pulled = Cell::new(0usize);
    let items = (0..100u64).inspect(|_| pulled.set(pulled.get() + 1));
    let mut it = pool.map_with(tasks::to_string, items, buffered(3));
    assert_eq!(pulled.get(), 3, "map() fills the window before returning");
    for k in 1..=6 {
        assert_eq!(it.next(), Some(Ok((k - 1).to_string())));
        assert_eq!(pulled.get(), 3 + k - 1, "after {k} calls to next()");
    }
}

/// bpo-12456: `map` followed by `shutdown` must not deadlock, and the
/// submitted work still completes.
pub fn test_shutdown_race_issue12456<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let results = pool.map(tasks::to_string, vec![2; WORKERS + 1]);
    pool.shutdown(true, false);
    let got: Vec<_> = results.collect();
    assert_eq!(got, vec![Ok("2".to_owned()); WORKERS + 1]);
}

/// CPython: `max_workers` of 0 or -1 is a `ValueError`. Ours: 0 is a
/// `ConfigError` with the same message (-1 does not compile).
pub fn test_max_workers_negative<E: Executor>(make: impl Make<E>) {
    match make(0) {
        Err(err) => assert!(
            err.to_string()
                .contains("max_workers must be greater than 0"),
            "{err}"
        ),
        Ok(_) => panic!("max_workers=0 was accepted"),
    }
    assert_eq!(make(3).unwrap().max_workers(), 3);
}

/// bpo-14406: the result iterator keeps no reference to the results it
/// yielded. In Rust, `Map` moves each result out of its future, which only
/// succeeds for the last handle (otherwise it yields `Err(Shared)`): each
/// item arriving as an owned `Ok` shows that `Map` kept nothing.
pub fn test_free_reference<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    for (i, obj) in pool.map(tasks::make_dummy_object, 0..10).enumerate() {
        assert_eq!(obj, Ok(tasks::MyObject { id: i as u32 }));
    }
}

/// From `test_thread_pool.py` (bpo-11777): the tasks of a `map` run even if
/// its results are never consumed.
///
/// Difference: our `map` is lazy; it submits its first window
/// (4 × `max_workers`, at least 64, which covers these 10 items) before returning, and
/// dropping the iterator cancels what is still queued, so the iterator is
/// kept alive over the shutdown.
pub fn test_map_submits_without_iteration<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let gate = Gate::new();
    let g = gate.gate_ref();
    let results = pool.map(tasks::arrive, (0..10).map(|i| (g.clone(), i.to_string())));
    pool.shutdown(true, false);
    let mut arrived = gate.settled_arrivals();
    arrived.sort_by_key(|tag| tag.parse::<u32>().unwrap());
    let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(arrived, expected);
    drop(results);
}

/// From `test_thread_pool.py`: with the only worker busy, `map(...,
/// timeout=0)` times out at once and neither of its items ever starts (the
/// one waited for and the one behind it are both cancelled).
pub fn test_executor_map_current_future_cancel<E: Executor>(make: impl Make<E>) {
    let pool = make(1).unwrap();
    let gate = Gate::new();
    let g = gate.gate_ref();
    let first = pool
        .submit(tasks::block, (g.clone(), "first".into()))
        .unwrap();
    gate.wait_for_arrivals(1);
    {
        let mut it = pool.map_with(
            tasks::block,
            ["second", "third"].map(|t| (g.clone(), t.to_owned())),
            MapOptions::new().timeout(Duration::ZERO),
        );
        assert!(
            matches!(it.next(), Some(Err(TaskError::TimedOut { .. }))),
            "the first next() must hit the deadline"
        );
        assert_eq!(it.next(), None);
    }
    gate.open();
    assert_eq!(first.result(), Ok(&0));
    pool.shutdown(true, false);
    assert_eq!(gate.settled_arrivals(), ["first"]);
}
