//! `map_unordered`: multiprocessing's `imap_unordered`, mpi4py's
//! `map(..., unordered=True)`. Not in CPython's suite; written to the same
//! rules as the rest of `generic/`.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use concurrent_futures::{Executor, MapOptions, TaskError};

use super::{Make, WORKERS};
use crate::support::Gate;
use crate::tasks;

/// Every item comes out once, under its own index, with and without
/// chunks.
pub fn test_every_item_once<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    for chunksize in [1, 7] {
        let opts = MapOptions::new().chunksize(NonZeroUsize::new(chunksize).unwrap());
        let mut got = BTreeMap::new();
        for (i, r) in pool.map_unordered_with(tasks::abs, (0..100).map(|x: i64| -x), opts) {
            assert!(got.insert(i, r).is_none(), "index {i} came out twice");
        }
        let expected: BTreeMap<usize, Result<i64, TaskError>> =
            (0..100).map(|i| (i, Ok(i as i64))).collect();
        assert_eq!(got, expected, "chunksize {chunksize}");
    }
}

/// A result comes out as soon as it is done: an item that is still
/// running does not hold back the ones after it.
pub fn test_done_first<E: Executor>(make: impl Make<E>) {
    let pool = make(2).unwrap();
    let gate = Gate::new();
    let g = gate.gate_ref();
    let items = (0..4).map(|i| (g.clone(), i.to_string(), i == 0));
    let mut it = pool.map_unordered(tasks::arrive_or_block, items);
    // Item 0 runs, blocked on the gate; the others are done.
    gate.wait_for_arrivals(4);
    let mut early: Vec<usize> = (0..3)
        .map(|_| {
            let (i, r) = it.next().expect("three items are done");
            assert_eq!(r, Ok(i.to_string()));
            i
        })
        .collect();
    early.sort_unstable();
    assert_eq!(early, [1, 2, 3]);
    gate.open();
    assert_eq!(it.next(), Some((0, Ok("0".to_owned()))));
    assert_eq!(it.next(), None);
}

/// A failing item gives its error under its index; the iteration goes on.
pub fn test_failing_item<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    for chunksize in [1, 2] {
        let opts = MapOptions::new().chunksize(NonZeroUsize::new(chunksize).unwrap());
        let items = [(10, 1), (10, 0), (10, 2), (10, 5)];
        let mut got: Vec<(usize, Result<i64, TaskError>)> =
            pool.map_unordered_with(tasks::div, items, opts).collect();
        got.sort_by_key(|(i, _)| *i);
        assert_eq!(got.len(), 4, "chunksize {chunksize}: {got:?}");
        assert_eq!(got[0], (0, Ok(10)));
        assert!(
            matches!(&got[1], (1, Err(TaskError::Panicked { .. }))),
            "{:?}",
            got[1]
        );
        assert_eq!(got[2], (2, Ok(5)));
        assert_eq!(got[3], (3, Ok(2)));
    }
}

/// An endless input is read at most a window ahead of the consumer, so
/// memory stays flat.
pub fn test_endless_input<E: Executor>(make: impl Make<E>) {
    const WINDOW: usize = 8;
    let pool = make(2).unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let input = (0u32..).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let opts = MapOptions::new().buffersize(NonZeroUsize::new(WINDOW).unwrap());
    let mut seen = 0;
    for (i, r) in pool
        .map_unordered_with(tasks::identity, input, opts)
        .take(500)
    {
        assert_eq!(r, Ok(i as u32));
        seen += 1;
        let read = pulled.load(Ordering::SeqCst);
        assert!(
            read <= seen + WINDOW,
            "{read} items read for {seen} yielded (window {WINDOW})"
        );
    }
    assert_eq!(seen, 500);
}

/// Dropping the iterator cancels the tasks still queued: they never run.
pub fn test_drop_cancels_queued<E: Executor>(make: impl Make<E>) {
    let pool = make(1).unwrap();
    let gate = Gate::new();
    let g = gate.gate_ref();
    let items = (0..4).map(|i| (g.clone(), i.to_string()));
    let it = pool.map_unordered(tasks::block, items);
    // One item runs (the only worker, blocked); three are queued.
    gate.wait_for_arrivals(1);
    drop(it);
    gate.open();
    pool.shutdown(true, false);
    assert_eq!(
        gate.settled_arrivals().len(),
        1,
        "queued items ran after the drop"
    );
}

/// The deadline passes: the smallest pending index gets `TimedOut`, the
/// queued tasks are cancelled, and the iteration ends.
pub fn test_timeout<E: Executor>(make: impl Make<E>) {
    let pool = make(1).unwrap();
    let gate = Gate::new();
    let g = gate.gate_ref();
    let first = pool
        .submit(tasks::block, (g.clone(), "first".into()))
        .unwrap();
    gate.wait_for_arrivals(1);
    let items = ["a", "b", "c"].map(|t| (g.clone(), t.to_owned()));
    let mut it = pool.map_unordered_with(
        tasks::block,
        items,
        MapOptions::new().timeout(Duration::ZERO),
    );
    match it.next() {
        Some((
            0,
            Err(TaskError::TimedOut {
                unfinished, total, ..
            }),
        )) => {
            assert_eq!((unfinished, total), (3, 3));
        }
        other => panic!("expected the deadline under index 0, got {other:?}"),
    }
    assert_eq!(it.next(), None);
    drop(it);
    gate.open();
    assert_eq!(first.result(), Ok(&0));
    pool.shutdown(true, false);
    assert_eq!(gate.settled_arrivals(), ["first"]);
}
