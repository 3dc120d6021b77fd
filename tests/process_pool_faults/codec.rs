//! Payloads that fail to cross the process boundary: arguments that do not
//! encode (submit refuses them; nothing is sent), arguments that do not
//! decode in the worker, results that do not encode in the worker or do
//! not decode in the parent. Each fails only its own future, with the type
//! named, and the worker carries on. (The `Serialize` / `Deserialize`
//! impls that end the process are in `crashes`.)

use std::any::type_name;

use concurrent_futures::{Executor, ProcessPoolExecutor, StartMethod, TaskError};

use crate::payloads::{
    DECODE_PANIC, DECODE_REFUSAL, ENCODE_PANIC, ENCODE_REFUSAL, PanicOnDecode, PanicOnEncode,
    RefuseDecode, RefuseEncode,
};
use crate::support::{Gate, GateRef, HangGuard};
use crate::tasks;
use crate::{Fate, fault_scenario, pid_of, pool, value};

for_each_start_method!(
    args_refuse_to_encode,
    args_panic_while_encoding,
    args_panic_while_encoding_reads_like_a_worker_side_panic,
    args_refuse_to_decode_in_worker,
    args_panic_while_decoding_in_worker,
    result_refuses_to_encode_in_worker,
    result_panics_while_encoding_in_worker,
    result_refuses_to_decode_in_parent,
    result_panics_while_decoding_in_parent,
    result_panic_while_decoding_in_parent_reads_like_a_worker_side_panic,
);

/// Asserts that `err` is `Encode` (`decode == false`) or `Decode` of
/// exactly `type_name`, with `reason` in its reason and both in its
/// message.
pub(crate) fn expect_codec(err: &TaskError, decode: bool, type_name: &str, reason: &str) {
    let (got_type, got_reason) = match (err, decode) {
        (TaskError::Encode { type_name, reason }, false)
        | (TaskError::Decode { type_name, reason }, true) => (type_name, reason),
        _ => panic!(
            "expected {} of {type_name}, got {err:?}",
            if decode { "Decode" } else { "Encode" }
        ),
    };
    assert_eq!(got_type, type_name, "{err:?}");
    assert!(
        got_reason.contains(reason),
        "{got_reason:?} does not contain {reason:?}"
    );
    let text = err.to_string();
    let verb = if decode { "decode" } else { "encode" };
    assert!(
        text.contains(&format!("could not {verb} a value of type {type_name}")),
        "{text}"
    );
}

/// Arguments that fail to encode make `submit` itself fail, and nothing is
/// sent. With the pool's only worker blocked on the gate by a task in
/// flight: the bad submit returns `Err` at once, the task in flight and
/// one queued behind the failure complete with their values, the same
/// worker serves the next task, and the bad task never ran (it would
/// record "ran" at the gate). Then, as CPython's
/// `test_shutdown_deadlock_pickle` (bpo-39104), `shutdown(wait = false)`
/// right after another failed submit does not hang.
pub(crate) fn args_fail_at_submit(
    method: StartMethod,
    what: &'static str,
    submit_bad: impl Fn(&ProcessPoolExecutor, &Gate) -> Result<(), TaskError>,
    check: impl Fn(&TaskError),
) {
    let _guard = HangGuard::new(what);
    let pool = pool(method, 1);
    let gate = Gate::new();
    let blocker = pool
        .submit(tasks::block_report, (gate.gate_ref(), "blocker".into()))
        .unwrap();
    let pid = pid_of(&gate.wait_for_arrivals(1), "blocker");

    check(&submit_bad(&pool, &gate).unwrap_err());
    let queued = pool.submit(tasks::square, 6).unwrap();
    gate.open();
    assert_eq!(value(&blocker), pid);
    assert_eq!(value(&queued), 36);
    assert_eq!(value(&pool.submit(tasks::whoami, ()).unwrap()), pid);
    assert_eq!(pool.worker_pids(), [pid]);

    check(&submit_bad(&pool, &gate).unwrap_err());
    pool.shutdown(false, false);
    assert_eq!(
        pool.submit(tasks::square, 2).map(drop).unwrap_err(),
        TaskError::ShutDown
    );
    drop(pool);
    assert_eq!(gate.settled_arrivals(), [format!("blocker:{pid}")]);
}

/// CPython's `test_error_at_task_pickle`: a `Serialize` that returns an
/// error; `Encode` names the argument type and carries the reason.
fn args_refuse_to_encode(method: StartMethod) {
    args_fail_at_submit(
        method,
        "arguments that refuse to encode",
        |pool, gate| {
            pool.submit(tasks::take_refuse_encode, (gate.gate_ref(), RefuseEncode))
                .map(drop)
        },
        |err| {
            expect_codec(
                err,
                false,
                type_name::<(GateRef, RefuseEncode)>(),
                ENCODE_REFUSAL,
            )
        },
    );
}

/// A `Serialize` that panics in `submit`: the panic is caught (the caller's
/// thread does not unwind) and becomes `Encode` with the panic message.
fn args_panic_while_encoding(method: StartMethod) {
    args_fail_at_submit(
        method,
        "arguments whose encode panics",
        |pool, gate| {
            pool.submit(
                tasks::take_panic_on_encode,
                (gate.gate_ref(), PanicOnEncode),
            )
            .map(drop)
        },
        |err| match err {
            TaskError::Encode { reason, .. } => {
                assert!(reason.contains(ENCODE_PANIC), "{reason:?}");
                assert!(err.to_string().starts_with("could not encode"), "{err}");
            }
            other => panic!("expected Encode, got {other:?}"),
        },
    );
}

/// As [`args_panic_while_encoding`], reported as a panicking `Serialize`
/// of a result is (see [`result_panics_while_encoding_in_worker`]): the
/// type is named, and the reason is the panic message, not "the task
/// panicked" (no task ran).
fn args_panic_while_encoding_reads_like_a_worker_side_panic(method: StartMethod) {
    let _guard = HangGuard::new("arguments whose encode panics");
    let pool = pool(method, 1);
    let gate = Gate::new();
    let err = pool
        .submit(
            tasks::take_panic_on_encode,
            (gate.gate_ref(), PanicOnEncode),
        )
        .map(drop)
        .unwrap_err();
    assert_eq!(
        err,
        TaskError::Encode {
            type_name: type_name::<(GateRef, PanicOnEncode)>().to_owned(),
            reason: format!("the encode panicked: {ENCODE_PANIC}"),
        }
    );
}

/// CPython's `test_error_at_task_unpickle`: the worker cannot decode the
/// argument, so the task never runs; `Decode` names the argument type.
fn args_refuse_to_decode_in_worker(method: StartMethod) {
    fault_scenario(
        method,
        "an argument that refuses to decode",
        |pool, _| {
            pool.submit(tasks::take_refuse_decode, RefuseDecode)
                .unwrap()
        },
        Fate::Survives,
        |err, _| expect_codec(err, true, type_name::<RefuseDecode>(), DECODE_REFUSAL),
    );
}

fn args_panic_while_decoding_in_worker(method: StartMethod) {
    fault_scenario(
        method,
        "an argument whose decode panics",
        |pool, _| {
            pool.submit(tasks::take_panic_on_decode, PanicOnDecode)
                .unwrap()
        },
        Fate::Survives,
        |err, _| {
            expect_codec(err, true, type_name::<PanicOnDecode>(), DECODE_PANIC);
            assert_eq!(
                err,
                &TaskError::Decode {
                    type_name: type_name::<PanicOnDecode>().to_owned(),
                    reason: format!("the decode panicked: {DECODE_PANIC}"),
                }
            );
        },
    );
}

/// CPython's `test_error_during_result_pickle_on_worker`.
fn result_refuses_to_encode_in_worker(method: StartMethod) {
    fault_scenario(
        method,
        "a result that refuses to encode",
        |pool, _| pool.submit(tasks::make_refuse_encode, ()).unwrap(),
        Fate::Survives,
        |err, _| expect_codec(err, false, type_name::<RefuseEncode>(), ENCODE_REFUSAL),
    );
}

fn result_panics_while_encoding_in_worker(method: StartMethod) {
    fault_scenario(
        method,
        "a result whose encode panics",
        |pool, _| pool.submit(tasks::make_panic_on_encode, ()).unwrap(),
        Fate::Survives,
        |err, _| {
            expect_codec(err, false, type_name::<PanicOnEncode>(), ENCODE_PANIC);
            assert_eq!(
                err,
                &TaskError::Encode {
                    type_name: type_name::<PanicOnEncode>().to_owned(),
                    reason: format!("the encode panicked: {ENCODE_PANIC}"),
                }
            );
        },
    );
}

/// CPython's `test_error_during_result_unpickle_in_result_handler`.
fn result_refuses_to_decode_in_parent(method: StartMethod) {
    fault_scenario(
        method,
        "a result that refuses to decode",
        |pool, _| pool.submit(tasks::make_refuse_decode, ()).unwrap(),
        Fate::Survives,
        |err, _| expect_codec(err, true, type_name::<RefuseDecode>(), DECODE_REFUSAL),
    );
}

/// A `Deserialize` that panics in the parent's handler thread: caught,
/// `Decode` with the message; the handler and its worker carry on.
fn result_panics_while_decoding_in_parent(method: StartMethod) {
    fault_scenario(
        method,
        "a result whose decode panics",
        |pool, _| pool.submit(tasks::make_panic_on_decode, ()).unwrap(),
        Fate::Survives,
        |err, _| expect_codec(err, true, type_name::<PanicOnDecode>(), DECODE_PANIC),
    );
}

/// As [`result_panics_while_decoding_in_parent`], with the reason a
/// panicking `Deserialize` gets in the worker
/// ([`args_panic_while_decoding_in_worker`]): the panic message, not "the
/// task panicked" (the task succeeded).
fn result_panic_while_decoding_in_parent_reads_like_a_worker_side_panic(method: StartMethod) {
    let _guard = HangGuard::new("a result whose decode panics");
    let pool = pool(method, 1);
    let fut = pool.submit(tasks::make_panic_on_decode, ()).unwrap();
    assert_eq!(
        crate::error(&fut),
        TaskError::Decode {
            type_name: type_name::<PanicOnDecode>().to_owned(),
            reason: format!("the decode panicked: {DECODE_PANIC}"),
        }
    );
}
