//! The thread pool's own `submit`, `map` and `map_unordered`, which take
//! closures and plain Rust types (no serde): the checks of the generic
//! `map` and `map_unordered` tests, for closures.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use concurrent_futures::{MapOptions, TaskError, ThreadPoolExecutor};

use crate::support::{Gate, SHORT_TIMEOUT};

/// Neither `Serialize` nor `Deserialize`, nor `Clone`.
struct Plain {
    text: String,
    seen: Cell<u32>,
}

fn pool(workers: usize) -> ThreadPoolExecutor {
    ThreadPoolExecutor::builder()
        .max_workers(workers)
        .build()
        .unwrap()
}

#[test]
fn test_submit_closure_with_plain_types() {
    let pool = pool(2);
    let suffix = String::from("!"); // captured by move
    let fut = pool
        .submit(
            move |p: Plain| {
                p.seen.set(p.seen.get() + 1);
                p.text.len() + suffix.len() + p.seen.get() as usize - 1
            },
            Plain {
                text: "four".into(),
                seen: Cell::new(0),
            },
        )
        .unwrap();
    assert_eq!(fut.result_timeout(SHORT_TIMEOUT), Ok(&5));
    // A plain function is a closure too.
    fn twice(x: u32) -> u32 {
        2 * x
    }
    assert_eq!(pool.submit(twice, 21).unwrap().into_result(), Ok(42));
}

#[test]
fn test_map_closure_in_order_with_a_failing_item() {
    let pool = pool(3);
    let divisor = Arc::new(100i64);
    for chunksize in [1, 3] {
        let d = Arc::clone(&divisor);
        let opts = MapOptions::new().chunksize(NonZeroUsize::new(chunksize).unwrap());
        let out: Vec<Result<i64, TaskError>> = pool
            .map_with(move |x: i64| *d / x, [1, 0, 4, 5, 10], opts)
            .collect();
        assert_eq!(out.len(), 5);
        assert_eq!(out[0], Ok(100));
        assert!(
            matches!(&out[1], Err(TaskError::Panicked { .. })),
            "{out:?}"
        );
        assert_eq!(&out[2..], [Ok(25), Ok(20), Ok(10)]);
    }
}

#[test]
fn test_map_closure_reads_a_window_ahead() {
    const WINDOW: usize = 4;
    let pool = pool(2);
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let input = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let opts = MapOptions::new().buffersize(NonZeroUsize::new(WINDOW).unwrap());
    for (n, r) in pool.map_with(|x| x + 1, input, opts).take(200).enumerate() {
        assert_eq!(r, Ok(n as u64 + 1));
        let read = pulled.load(Ordering::SeqCst);
        assert!(read <= n + 1 + WINDOW, "{read} read for {} yielded", n + 1);
    }
}

#[test]
fn test_map_unordered_closure() {
    let pool = pool(4);
    let mut got = BTreeMap::new();
    for (i, r) in pool.map_unordered(|s: String| s.len(), (0..50).map(|n| "x".repeat(n))) {
        assert!(got.insert(i, r).is_none());
    }
    assert_eq!(got.len(), 50);
    for (i, r) in got {
        assert_eq!(r, Ok(i));
    }
}

#[test]
fn test_map_unordered_closure_drop_cancels() {
    let pool = pool(1);
    let gate = Gate::new();
    let g = gate.gate_ref();
    let ran = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&ran);
    let it = pool.map_unordered_with(
        move |i: usize| {
            count.fetch_add(1, Ordering::SeqCst);
            g.wait_as(&i.to_string());
            i
        },
        0..4,
        MapOptions::new().timeout(SHORT_TIMEOUT),
    );
    // The only worker runs one item, blocked; three are queued.
    gate.wait_for_arrivals(1);
    drop(it);
    gate.open();
    pool.shutdown(true, false);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "queued items ran after the drop"
    );
}

#[test]
fn test_map_closure_timeout() {
    let pool = pool(1);
    let gate = Gate::new();
    let g = gate.gate_ref();
    let blocked = pool.spawn(move || g.wait_as("first")).unwrap();
    gate.wait_for_arrivals(1);
    let mut it = pool.map_with(|x: u8| x, [1, 2], MapOptions::new().timeout(Duration::ZERO));
    assert!(matches!(it.next(), Some(Err(TaskError::TimedOut { .. }))));
    assert_eq!(it.next(), None);
    gate.open();
    assert_eq!(blocked.result_timeout(SHORT_TIMEOUT), Ok(&()));
}

/// `spawn`, `submit` and `map` need only `R: Send`: a result that is not
/// `Sync` crosses from the worker, and its future stays in this thread.
#[test]
fn test_results_that_are_send_but_not_sync() {
    let pool = pool(2);
    let cell = pool.spawn(|| Cell::new(41)).unwrap();
    let got = cell.result_timeout(SHORT_TIMEOUT).unwrap();
    got.set(got.get() + 1);
    assert_eq!(cell.into_result().map(Cell::into_inner), Ok(42));

    let (tx, rx) = std::sync::mpsc::channel::<&'static str>();
    tx.send("through a Receiver").unwrap();
    let receiver = pool
        .submit(move |()| rx, ())
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(receiver.recv(), Ok("through a Receiver"));

    let cells: Vec<u32> = pool
        .map(|x: u32| std::cell::RefCell::new(x * 2), 0..5)
        .map(|r| r.unwrap().into_inner())
        .collect();
    assert_eq!(cells, [0, 2, 4, 6, 8]);
}
