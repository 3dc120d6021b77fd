//! `#[task]` and the registry a worker process will run tasks from: lookup
//! by function (the parent's side) and by name (the worker's side), the
//! invoker, and the codec under bad input. CI runs this file in debug and
//! in release, since function addresses behave differently there.

use concurrent_futures::{Executor, ProcessPoolExecutor, TaskError, task};
// The registry and the codec are internals, in the crate the remote
// executors share; the facade does not export them.
use concurrent_futures_task_wire::codec;
use concurrent_futures_task_wire::registry::{self, InvokeError};
use serde::{Serialize, Serializer};

#[task]
fn square(x: u64) -> u64 {
    x * x
}

#[task]
fn concat((a, b): (String, String)) -> String {
    a + &b
}

#[task]
fn no_result(_: u8) {}

#[task]
fn panics(message: String) -> u8 {
    panic!("{message}")
}

// Same body, different types: the linker may fold them into one address.
#[task]
fn same_body_u64(x: u64) -> u64 {
    x.wrapping_add(1)
}
#[task]
fn same_body_i64(x: i64) -> i64 {
    x.wrapping_add(1)
}

mod nested {
    use concurrent_futures::task;

    #[task]
    pub fn negate(x: i32) -> i32 {
        -x
    }
}

// Two tasks whose names differ only in case, in one module: the macro once
// named its hidden static after the upper-cased name, so these collided.
#[task]
fn case_twin(x: u32) -> u32 {
    x + 1
}
#[allow(non_snake_case)]
#[task]
fn CASE_TWIN(x: u32) -> u32 {
    x * 10
}

// A raw identifier: registered without its `r#`.
#[task]
fn r#type(x: u8) -> u8 {
    x.wrapping_sub(1)
}

// Tasks named like bindings of the expansion (its closures' parameters,
// linkme's type-check function): it must still call these functions.
#[task]
fn out(x: u16) -> u16 {
    x + 2
}
#[task]
fn bytes(x: u16) -> u16 {
    x + 3
}
#[task]
fn __typecheck(x: u16) -> u16 {
    x + 4
}

fn not_a_task(x: u64) -> u64 {
    x + 1
}

/// A result type whose serialisation always fails.
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be encoded",
        ))
    }
}

impl<'de> serde::Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unencodable)
    }
}

#[task]
fn makes_unencodable(_: u8) -> Unencodable {
    Unencodable
}

fn run<A: serde::Serialize, R: serde::de::DeserializeOwned + 'static>(
    name: &str,
    arg: &A,
) -> Result<R, InvokeError> {
    let entry = registry::by_task_name(name).expect("registered");
    let mut out = Vec::new();
    (entry.invoke)(&codec::encode(arg).unwrap(), &mut out)?;
    Ok(codec::decode(&out).unwrap())
}

#[test]
fn lookup_by_function_gives_the_module_qualified_name() {
    assert_eq!(
        registry::lookup(square).unwrap().name,
        "task_registry::square"
    );
    assert_eq!(
        registry::lookup(concat).unwrap().name,
        "task_registry::concat"
    );
    assert_eq!(
        registry::lookup(nested::negate).unwrap().name,
        "task_registry::nested::negate"
    );
    assert_eq!(
        registry::lookup(no_result).unwrap().name,
        "task_registry::no_result"
    );
}

#[test]
fn functions_with_one_body_and_different_types_are_told_apart() {
    assert_eq!(
        registry::lookup(same_body_u64).unwrap().name,
        "task_registry::same_body_u64"
    );
    assert_eq!(
        registry::lookup(same_body_i64).unwrap().name,
        "task_registry::same_body_i64"
    );
}

#[test]
fn tasks_whose_names_differ_only_in_case_are_two_tasks() {
    let lower = registry::lookup(case_twin).unwrap();
    let upper = registry::lookup(CASE_TWIN).unwrap();
    assert_eq!(lower.name, "task_registry::case_twin");
    assert_eq!(upper.name, "task_registry::CASE_TWIN");
    assert_eq!(run::<u32, u32>(lower.name, &4), Ok(5));
    assert_eq!(run::<u32, u32>(upper.name, &4), Ok(40));

    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .build()
        .unwrap();
    assert_eq!(pool.submit(case_twin, 4).unwrap().into_result(), Ok(5));
    assert_eq!(pool.submit(CASE_TWIN, 4).unwrap().into_result(), Ok(40));
}

#[test]
fn a_raw_identifier_is_registered_without_its_prefix() {
    let entry = registry::lookup(r#type).unwrap();
    assert_eq!(entry.name, "task_registry::type");
    assert!(registry::by_task_name("task_registry::r#type").is_none());
    assert_eq!(run::<u8, u8>("task_registry::type", &0), Ok(u8::MAX));

    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .build()
        .unwrap();
    assert_eq!(pool.submit(r#type, 0).unwrap().into_result(), Ok(u8::MAX));
}

#[test]
fn tasks_named_like_the_expansions_own_bindings_run_their_own_bodies() {
    assert_eq!(registry::lookup(out).unwrap().name, "task_registry::out");
    assert_eq!(
        registry::lookup(bytes).unwrap().name,
        "task_registry::bytes"
    );
    assert_eq!(run::<u16, u16>("task_registry::out", &1), Ok(3));
    assert_eq!(run::<u16, u16>("task_registry::bytes", &1), Ok(4));
    assert_eq!(
        registry::lookup(__typecheck).unwrap().name,
        "task_registry::__typecheck"
    );
    assert_eq!(run::<u16, u16>("task_registry::__typecheck", &1), Ok(5));

    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .build()
        .unwrap();
    assert_eq!(pool.submit(out, 1).unwrap().into_result(), Ok(3));
    assert_eq!(pool.submit(bytes, 1).unwrap().into_result(), Ok(4));
    assert_eq!(pool.submit(__typecheck, 1).unwrap().into_result(), Ok(5));
}

#[test]
fn an_unregistered_function_is_refused_with_how_to_register_it() {
    let err = registry::lookup(not_a_task).unwrap_err();
    assert!(matches!(err, TaskError::Unregistered { .. }));
    let message = err.to_string();
    assert!(message.contains("fn(u64) -> u64"), "{message}");
    assert!(message.contains("#[concurrent_futures::task]"), "{message}");
}

#[test]
fn invoke_by_name_runs_the_task() {
    assert_eq!(run::<u64, u64>("task_registry::square", &12), Ok(144));
    assert_eq!(
        run::<_, String>("task_registry::concat", &("ab".to_owned(), "cd".to_owned())),
        Ok("abcd".to_owned())
    );
    assert_eq!(run::<i32, i32>("task_registry::nested::negate", &5), Ok(-5));
    assert_eq!(run::<u8, ()>("task_registry::no_result", &0), Ok(()));
    assert!(registry::by_task_name("task_registry::not_a_task").is_none());
}

#[test]
fn invoke_reports_each_failure_apart() {
    let entry = registry::by_task_name("task_registry::panics").unwrap();
    let out = (entry.invoke)(&codec::encode(&"boom".to_owned()).unwrap(), &mut Vec::new());
    assert_eq!(
        out,
        Err(InvokeError::Panicked(TaskError::Panicked {
            message: "boom".into()
        }))
    );

    let entry = registry::by_task_name("task_registry::square").unwrap();
    assert!(matches!(
        (entry.invoke)(b"\xff\xff\xff\xff", &mut Vec::new()),
        Err(InvokeError::DecodeArgs(e)) if e.type_name == "u64"
    ));

    let entry = registry::by_task_name("task_registry::makes_unencodable").unwrap();
    match (entry.invoke)(&codec::encode(&1_u8).unwrap(), &mut Vec::new()) {
        Err(InvokeError::EncodeResult(e)) => {
            assert!(e.type_name.ends_with("Unencodable"), "{e}");
            assert!(e.to_string().contains("refuses to be encoded"), "{e}");
        }
        other => panic!("expected an encode error, got {other:?}"),
    }
}

#[test]
fn decode_refuses_lengths_beyond_the_limit_without_allocating() {
    // bincode's varint: 0xfd then a u64 length of 2^40 for a Vec<u8>.
    let mut bytes = vec![0xfd];
    bytes.extend_from_slice(&(1_u64 << 40).to_le_bytes());
    let err = codec::decode::<Vec<u8>>(&bytes).unwrap_err();
    assert_eq!(err.direction, "decode");
    // Trailing garbage after a valid value is refused too.
    let mut ok = codec::encode(&7_u32).unwrap();
    ok.push(0);
    assert!(codec::decode::<u32>(&ok).is_err());
}

#[test]
fn decode_of_arbitrary_bytes_never_panics() {
    // A deterministic sweep of short inputs over a few payload shapes.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for len in 0..64 {
        for _ in 0..64 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = codec::decode::<(u64, String)>(&bytes);
            let _ = codec::decode::<Vec<Vec<u32>>>(&bytes);
            let _ = codec::decode::<Option<(i8, bool, char)>>(&bytes);
        }
    }
}
