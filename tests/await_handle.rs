//! `TaskFuture` is awaitable from async Rust, with no runtime: a std-only
//! `block_on` drives it here.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use concurrent_futures::prelude::*;

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `f` to completion on this thread, parking between polls; panics
/// after 30 s so a lost wake-up fails the test instead of hanging it.
fn block_on<F: Future>(f: F) -> F::Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        let now = Instant::now();
        assert!(now < deadline, "the future was never woken");
        thread::park_timeout(deadline - now);
    }
}

fn double(x: u32) -> u32 {
    x * 2
}

#[test]
fn await_moves_the_value_out() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .build()
        .unwrap();
    let fut = pool.submit(double, 21).unwrap();
    assert_eq!(block_on(async { fut.await }), Ok(42));
}

#[test]
fn await_by_reference_borrows_the_value() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .build()
        .unwrap();
    let fut = pool.spawn(|| String::from("borrowed")).unwrap();
    let len = block_on(async { (&fut).await.map(String::len) });
    assert_eq!(len, Ok(8));
    assert_eq!(fut.result().map(String::as_str), Ok("borrowed"));
}

#[test]
fn await_wakes_on_completion_from_another_thread() {
    let (fut, completer) = TaskFuture::pending();
    let t = thread::spawn(move || {
        completer.complete(Ok(7_u8));
    });
    assert_eq!(block_on(async { fut.await }), Ok(7));
    t.join().unwrap();
}

#[test]
fn await_sees_cancellation_and_panics() {
    let (cancelled, _completer) = TaskFuture::<u8>::pending();
    assert!(cancelled.cancel());
    assert_eq!(
        block_on(async { cancelled.await }),
        Err(TaskError::Cancelled)
    );

    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .build()
        .unwrap();
    let failing = pool.spawn(|| -> u8 { panic!("awaited panic") }).unwrap();
    assert_eq!(
        block_on(async { failing.await }),
        Err(TaskError::Panicked {
            message: "awaited panic".into()
        })
    );
}

#[test]
fn many_awaits_in_one_async_block() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .build()
        .unwrap();
    let futures: Vec<_> = (0..50).map(|i| pool.submit(double, i).unwrap()).collect();
    let total = block_on(async {
        let mut total = 0;
        for f in futures {
            total += f.await.unwrap();
        }
        total
    });
    assert_eq!(total, (0..50).map(|i| i * 2).sum::<u32>());
}
