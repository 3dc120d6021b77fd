//! Values nested deeper than the codec allows (512 levels; these are
//! 100,000 deep): an argument fails at `submit` with `Encode`, naming its
//! type and the limit, and nothing is sent; a result fails its own future
//! with `Encode` and the worker carries on. The encoder stops at the limit
//! instead of recursing through the whole value, which used to overflow
//! the stack of the thread encoding it: the caller's (aborting the whole
//! program at `submit`) or the worker's (killing it).
//!
//! The values drop themselves with a loop (see [`Deep`]), so what is
//! tested is the pool, not the compiler's recursive drop.

use std::any::type_name;

use concurrent_futures::{Executor, ProcessPoolExecutor, StartMethod, TaskError};

use crate::codec::{args_fail_at_submit, expect_codec};
use crate::payloads::Deep;
use crate::support::{GateRef, SHORT_TIMEOUT};
use crate::tasks;
use crate::{Fate, fault_scenario};

for_each_start_method!(
    deep_args_fail_at_submit,
    deep_chunk_items_fail_at_submit,
    deep_result_fails_its_future,
);

/// How deep the values are: far past any stack.
const LINKS: u32 = 100_000;

/// What the error's reason says.
const TOO_DEEP: &str = "the value nests deeper than 512 levels";

/// An argument 100,000 levels deep: `submit` returns `Encode` naming the
/// argument's type and the limit, at once and without overflowing the
/// calling thread's stack; the task never runs, the worker and the pool
/// carry on (see [`args_fail_at_submit`]).
fn deep_args_fail_at_submit(method: StartMethod) {
    args_fail_at_submit(
        method,
        "an argument nested 100,000 levels deep",
        |pool, gate| {
            pool.submit(tasks::take_deep, (gate.gate_ref(), Deep::with_links(LINKS)))
                .map(drop)
        },
        |err| {
            let type_name = type_name::<(GateRef, Deep)>();
            expect_codec(err, false, type_name, TOO_DEEP);
            assert_eq!(
                err,
                &TaskError::Encode {
                    type_name: type_name.to_owned(),
                    reason: TOO_DEEP.to_owned(),
                }
            );
        },
    );
}

/// The same for one item of a chunk (`map` with a `chunksize`): the whole
/// chunk is refused at submit, its shallow items too, and nothing runs.
fn deep_chunk_items_fail_at_submit(method: StartMethod) {
    args_fail_at_submit(
        method,
        "a chunk item nested 100,000 levels deep",
        |pool, gate| {
            let chunk = vec![
                (gate.gate_ref(), Deep::with_links(3)),
                (gate.gate_ref(), Deep::with_links(LINKS)),
            ];
            pool.submit_chunk(tasks::take_deep, chunk).map(drop)
        },
        |err| expect_codec(err, false, type_name::<(GateRef, Deep)>(), TOO_DEEP),
    );
}

/// A result 100,000 levels deep fails its future with `Encode` naming the
/// result's type and the limit; the worker that ran it is not replaced
/// (the same pid runs the next task, the pool's pids are unchanged), and
/// everything else in flight completes (see [`fault_scenario`]). A
/// result of the same type exactly as deep as the limit still crosses.
fn deep_result_fails_its_future(method: StartMethod) {
    fault_scenario(
        method,
        "a result nested 100,000 levels deep",
        |pool, _| pool.submit(tasks::make_deep, LINKS).unwrap(),
        Fate::Survives,
        |err, _| {
            assert_eq!(
                err,
                &TaskError::Encode {
                    type_name: type_name::<Deep>().to_owned(),
                    reason: TOO_DEEP.to_owned(),
                }
            );
            expect_codec(err, false, type_name::<Deep>(), TOO_DEEP);
        },
    );
    // 511 links and the `Nil`: exactly 512 levels.
    let pool = crate::pool(method, 1);
    let deepest = pool.submit(tasks::make_deep, 511).unwrap();
    assert_eq!(
        deepest.result_timeout(SHORT_TIMEOUT),
        Ok(&Deep::with_links(511))
    );
}

/// An initializer's argument that deep fails the builder with the same
/// reason, before any worker starts.
#[test]
fn deep_initializer_argument_fails_the_builder() {
    let err = ProcessPoolExecutor::builder()
        .max_workers(1)
        .initializer(tasks::init_deep, Deep::with_links(LINKS))
        .build()
        .map(drop)
        .unwrap_err()
        .to_string();
    let expected = format!(
        "initializer argument: could not encode a value of type {}: {TOO_DEEP}",
        type_name::<Deep>()
    );
    assert!(err.contains(&expected), "{err:?} does not say {expected:?}");
}
