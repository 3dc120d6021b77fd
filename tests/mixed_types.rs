//! `wait` and `as_completed` over futures of different result types, through
//! `&dyn Waitable` and `Box<dyn Waitable>`.

use std::sync::mpsc;
use std::time::Duration;

use concurrent_futures::Waitable;
use concurrent_futures::prelude::*;

const BOUND: Duration = Duration::from_secs(30);

#[test]
fn wait_over_mixed_result_types() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(3)
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let number = pool.spawn(|| 42_u64).unwrap();
    let text = pool.spawn(|| String::from("done")).unwrap();
    let blocked = pool.spawn(move || rx.recv_timeout(BOUND).is_ok()).unwrap();

    let all: Vec<&dyn Waitable> = vec![&number, &text, &blocked];
    let split = wait(
        all,
        Some(Duration::from_millis(50)),
        ReturnWhen::AllCompleted,
    );
    // Finished ones are done; the blocked one is not (the timeout is not an
    // error).
    assert_eq!(split.done.len(), 2);
    assert_eq!(split.not_done.len(), 1);
    assert_eq!(split.not_done[0].key(), Waitable::key(&blocked));

    tx.send(()).unwrap();
    let all: Vec<&dyn Waitable> = vec![&number, &text, &blocked];
    let split = wait(all, Some(BOUND), ReturnWhen::AllCompleted);
    assert_eq!(split.done.len(), 3);
    assert_eq!(number.result(), Ok(&42));
    assert_eq!(text.result().map(String::as_str), Ok("done"));
    assert_eq!(blocked.result(), Ok(&true));
}

#[test]
fn as_completed_over_boxed_mixed_futures() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let late = pool.spawn(move || rx.recv_timeout(BOUND).is_ok()).unwrap();
    let early = pool.spawn(|| vec![1_u8, 2, 3]).unwrap();
    early.result_timeout(BOUND).unwrap();

    let boxed: Vec<Box<dyn Waitable>> = vec![Box::new(late.clone()), Box::new(early.clone())];
    let mut order = as_completed(boxed, Some(BOUND));
    let first = order.next().unwrap().unwrap();
    assert_eq!(
        first.key(),
        Waitable::key(&early),
        "the finished one comes first"
    );
    tx.send(()).unwrap();
    let second = order.next().unwrap().unwrap();
    assert_eq!(second.key(), Waitable::key(&late));
    assert!(order.next().is_none());
    assert_eq!(late.result(), Ok(&true));
}
