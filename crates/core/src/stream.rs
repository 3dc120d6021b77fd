//! [`as_completed_stream`]: `as_completed` for async code, as a
//! [`Stream`] (feature `stream`).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::{AsCompleted, Waitable, as_completed};

/// The futures as they complete, for async code: [`as_completed`] as a
/// [`Stream`] (futures-core's, which tokio-stream, `futures` and others
/// consume), so an async task awaits the next completion instead of
/// blocking its thread. It yields the done ones first, then each as it
/// completes; duplicates count once. It has no deadline of its own: wrap
/// it in your runtime's timeout (`tokio::time::timeout`).
///
/// ```
/// use std::pin::Pin;
/// use std::task::{Context, Poll, Waker};
/// use concurrent_futures_core::{as_completed_stream, TaskFuture};
/// use futures_core::Stream;
///
/// let (slow, slow_done) = TaskFuture::pending();
/// let fast = TaskFuture::ready("fast");
/// let mut done = as_completed_stream([slow, fast]);
/// let mut cx = Context::from_waker(Waker::noop());
/// match Pin::new(&mut done).poll_next(&mut cx) {
///     Poll::Ready(Some(f)) => assert_eq!(f.result(), Ok(&"fast")),
///     other => panic!("{other:?}"),
/// }
/// assert!(Pin::new(&mut done).poll_next(&mut cx).is_pending()); // slow: not yet
/// slow_done.complete(Ok("slow")); // wakes the task that polled
/// match Pin::new(&mut done).poll_next(&mut cx) {
///     Poll::Ready(Some(f)) => assert_eq!(f.result(), Ok(&"slow")),
///     other => panic!("{other:?}"),
/// }
/// assert!(matches!(Pin::new(&mut done).poll_next(&mut cx), Poll::Ready(None)));
/// ```
pub fn as_completed_stream<W: Waitable>(
    futures: impl IntoIterator<Item = W>,
) -> AsCompletedStream<W> {
    AsCompletedStream {
        inner: as_completed(futures, None),
    }
}

/// The stream [`as_completed_stream`] returns.
pub struct AsCompletedStream<W: Waitable> {
    inner: AsCompleted<W>,
}

impl<W: Waitable + Unpin> Stream for AsCompletedStream<W> {
    type Item = W;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<W>> {
        let c = &mut self.get_mut().inner;
        if let Some(f) = c.ready.pop_front() {
            return Poll::Ready(Some(f));
        }
        loop {
            if c.remaining == 0 {
                return Poll::Ready(None);
            }
            match c.waiter.poll_next(cx) {
                Poll::Ready((i, _)) => {
                    if let Some(f) = c.slots[i].take() {
                        c.remaining -= 1;
                        return Poll::Ready(Some(f));
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.inner.ready.len() + self.inner.remaining;
        (n, Some(n))
    }
}
