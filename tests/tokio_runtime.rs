//! Futures of both pools on a real tokio multi-threaded runtime: awaited
//! by thousands of async tasks at once, with no `spawn_blocking` (an await
//! parks the async task, never a runtime thread), and, with the `stream`
//! feature, consumed as they complete through `as_completed_stream`.
//! Every wait is bounded by `tokio::time::timeout`.

use std::time::Duration;

use concurrent_futures::prelude::*;
use concurrent_futures::{ProcessPoolExecutor, TaskFuture};
use tokio::time::timeout;

/// Long enough never to pass in a passing run.
const BOUND: Duration = Duration::from_secs(60);

#[task]
fn square(x: u64) -> u64 {
    x * x
}

/// A thread pool and a process pool of 2 workers each.
fn pools() -> (ThreadPoolExecutor, ProcessPoolExecutor) {
    let threads = ThreadPoolExecutor::builder().max_workers(2).build();
    let processes = ProcessPoolExecutor::builder().max_workers(2).build();
    (threads.unwrap(), processes.unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

/// 2,000 async tasks on 2 runtime threads, each awaiting a thread-pool
/// future and a process-pool future (one by value, one by reference): every
/// task resolves, with its own values.
#[test]
fn thousands_of_futures_from_both_pools() {
    const N: u64 = 2000;
    let (threads, processes) = pools();
    let rt = runtime();
    let total = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..N {
            let on_threads = threads.submit(square, i).unwrap();
            let on_processes: TaskFuture<u64> = processes.submit(square, i).unwrap();
            tasks.push(tokio::spawn(async move {
                let a = on_threads.await.expect("thread pool");
                let b = *(&on_processes).await.expect("process pool");
                assert_eq!(a, b);
                a
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += timeout(BOUND, t)
                .await
                .expect("an await stalled")
                .expect("the task");
        }
        total
    });
    assert_eq!(total, (0..N).map(|i| i * i).sum::<u64>());
}

/// On a runtime of one thread, an async task awaits a pool task that
/// can only finish once another async task of the same runtime has run (it
/// sends after a tokio sleep): an await that blocked the runtime's one
/// thread would starve the sender, and the pool task would give up.
#[test]
fn an_await_leaves_the_runtime_thread_free() {
    let threads = ThreadPoolExecutor::builder()
        .max_workers(2)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let outcome = rt.block_on(async {
        let mut got = Vec::new();
        for round in 0..50u64 {
            let (tx, rx) = std::sync::mpsc::channel::<u64>();
            let waiting = threads
                .spawn(move || rx.recv_timeout(Duration::from_secs(10)).ok())
                .unwrap();
            let awaiter = tokio::spawn(async move { waiting.await.expect("the pool task") });
            let sender = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                tx.send(round).expect("the pool task listens");
            });
            got.push(timeout(BOUND, awaiter).await.expect("stalled").unwrap());
            timeout(BOUND, sender).await.expect("stalled").unwrap();
        }
        got
    });
    let expected: Vec<Option<u64>> = (0..50).map(Some).collect();
    assert_eq!(
        outcome, expected,
        "a pool task gave up: an await blocked the runtime"
    );
}

#[cfg(feature = "stream")]
mod stream {
    use std::pin::Pin;
    use std::sync::mpsc;
    use std::task::{Context, Poll};

    use concurrent_futures::as_completed_stream;
    use futures_core::Stream;

    use super::*;

    /// `next()` for a `Stream`, without a `StreamExt` crate.
    async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        std::future::poll_fn(|cx: &mut Context<'_>| Pin::new(&mut *s).poll_next(cx)).await
    }

    /// Futures from both pools, mixed, come out of the stream as they
    /// complete: one blocked task comes last, after everything else.
    #[test]
    fn as_completed_stream_on_tokio() {
        let (threads, processes) = pools();
        let (release, gate) = mpsc::channel::<()>();
        let blocked = threads
            .spawn(move || {
                gate.recv().expect("released");
                u64::MAX
            })
            .unwrap();
        let mut futures: Vec<TaskFuture<u64>> = vec![blocked];
        for i in 0..100 {
            futures.push(threads.submit(square, i).unwrap());
            futures.push(processes.submit(square, i).unwrap());
        }
        let rt = runtime();
        let order = rt.block_on(async move {
            let mut done = as_completed_stream(futures);
            let mut seen = Vec::new();
            while seen.len() < 200 {
                let f = timeout(BOUND, next(&mut done))
                    .await
                    .expect("the stream stalled")
                    .expect("more futures");
                seen.push(*f.result().unwrap());
            }
            // Only the blocked one is left: the stream waits for it.
            let pending = std::future::poll_fn(|cx| {
                Poll::Ready(Pin::new(&mut done).poll_next(cx).is_pending())
            })
            .await;
            assert!(pending, "the blocked task came out before it ran");
            release.send(()).unwrap();
            let last = timeout(BOUND, next(&mut done)).await.expect("stalled");
            seen.push(*last.expect("the blocked one").result().unwrap());
            assert!(next(&mut done).await.is_none());
            seen
        });
        assert_eq!(order.last(), Some(&u64::MAX));
        let mut squares: Vec<u64> = order[..200].to_vec();
        squares.sort_unstable();
        let mut expected: Vec<u64> = (0..100).flat_map(|i| [i * i, i * i]).collect();
        expected.sort_unstable();
        assert_eq!(squares, expected);
    }
}
