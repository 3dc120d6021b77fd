//! The registry of task functions: what a worker process may run.
//!
//! `#[concurrent_futures::task]` puts one [`TaskEntry`] per function into
//! the linker-built slice [`TASKS`] (linkme), so the table exists before
//! `main` and in every kind of binary (programs, test harnesses, doc tests,
//! examples, benches). A message to a worker names a task; the worker looks
//! the name up here and runs that entry's invoker. Nothing in a message can
//! make a worker call anything else.
//!
//! The parent maps the `fn(A) -> R` it was given back to a name by address
//! *and* by the `TypeId`s of `A` and `R`. Addresses alone are not reliable:
//! the compiler may give one function several copies (the macro forces
//! `#[inline(never)]` against that) and may merge identical functions, even
//! of different types (the `TypeId`s tell those apart; two merged functions
//! of the same types behave the same, so either name is correct).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::OnceLock;

use concurrent_futures_core::{TaskError, catch_panic};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, CodecError};

/// One registered task function. Made by `#[task]`; never by hand.
#[derive(Debug)]
pub struct TaskEntry {
    /// `module_path!()::fn_name` (a raw identifier without its `r#`): what
    /// messages carry.
    pub name: &'static str,
    /// `TypeId` of the argument type.
    pub arg: fn() -> TypeId,
    /// `TypeId` of the result type.
    pub ret: fn() -> TypeId,
    /// The function's address, as `usize`.
    pub addr: fn() -> usize,
    /// Decodes the argument, runs the function, appends the encoded result.
    pub invoke: fn(&[u8], &mut Vec<u8>) -> Result<(), InvokeError>,
}

/// Every task of this binary, collected by the linker.
#[linkme::distributed_slice]
pub static TASKS: [TaskEntry];

/// Why running a task by name gave no encoded result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvokeError {
    /// The argument bytes did not decode as the task's argument type.
    DecodeArgs(CodecError),
    /// The task panicked.
    Panicked(TaskError),
    /// The result could not be encoded.
    EncodeResult(CodecError),
}

/// The body of every entry's `invoke`: decode `A`, run `f`, append the
/// encoded `R` to `out`. A panic in any of the three is caught: in the
/// function it is [`InvokeError::Panicked`]; in a `Deserialize` or
/// `Serialize` impl it is the decode or encode error, with the message.
///
/// ```
/// use concurrent_futures_task_wire::{codec, registry::{invoke, InvokeError}};
/// fn double(x: u32) -> u32 { x * 2 }
/// let mut out = Vec::new();
/// invoke(double, &codec::encode(&21_u32).unwrap(), &mut out).unwrap();
/// assert_eq!(codec::decode::<u32>(&out), Ok(42));
/// let bad = invoke(double, b"\xff\xff\xff", &mut Vec::new());
/// assert!(matches!(bad, Err(InvokeError::DecodeArgs(_))));
/// ```
pub fn invoke<A: DeserializeOwned, R: Serialize>(
    f: fn(A) -> R,
    args: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), InvokeError> {
    let a: A = catch_panic(|| codec::decode(args))
        .unwrap_or_else(|e| Err(panicked_codec::<A>("decode", e)))
        .map_err(InvokeError::DecodeArgs)?;
    let r = catch_panic(|| f(a)).map_err(InvokeError::Panicked)?;
    catch_panic(|| codec::encode_into(&r, out))
        .unwrap_or_else(|e| Err(panicked_codec::<R>("encode", e)))
        .map_err(InvokeError::EncodeResult)
}

fn panicked_codec<T>(direction: &'static str, e: TaskError) -> CodecError {
    let reason = match e {
        TaskError::Panicked { message } => format!("the {direction} panicked: {message}"),
        other => other.to_string(),
    };
    CodecError {
        direction,
        type_name: std::any::type_name::<T>(),
        reason,
    }
}

fn by_name() -> &'static HashMap<&'static str, &'static TaskEntry> {
    static MAP: OnceLock<HashMap<&'static str, &'static TaskEntry>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map = HashMap::new();
        for entry in TASKS.iter() {
            // Two entries with one name (two copies of a crate) are
            // ambiguous: neither may be run by name.
            if map.insert(entry.name, entry).is_some() {
                map.remove(entry.name);
            }
        }
        map
    })
}

/// The task registered under `name`, if any (the worker's lookup).
///
/// ```
/// use concurrent_futures_task_wire::registry;
/// assert!(registry::by_task_name("no::such::task").is_none());
/// ```
pub fn by_task_name(name: &str) -> Option<&'static TaskEntry> {
    by_name().get(name).copied()
}

/// The registered entry for the function `f` (the parent's lookup), or an
/// error that says how to register it.
///
/// ```
/// use concurrent_futures_task_wire::registry;
/// fn not_registered(x: u8) -> u8 { x }
/// let err = registry::lookup(not_registered).unwrap_err();
/// assert!(err.to_string().contains("#[concurrent_futures::task]"));
/// ```
pub fn lookup<A: 'static, R: 'static>(f: fn(A) -> R) -> Result<&'static TaskEntry, TaskError> {
    let addr = f as usize;
    let (arg, ret) = (TypeId::of::<A>(), TypeId::of::<R>());
    TASKS
        .iter()
        .find(|e| (e.addr)() == addr && (e.arg)() == arg && (e.ret)() == ret)
        .ok_or_else(|| TaskError::Unregistered {
            function: format!(
                "the function at {addr:#x} of type fn({}) -> {}",
                std::any::type_name::<A>(),
                std::any::type_name::<R>()
            ),
        })
}
