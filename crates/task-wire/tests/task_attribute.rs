//! `#[task(crate = ...)]`: a crate that defines tasks without the facade
//! names this crate, and its tasks land in the same registry.

use concurrent_futures_macros::task;
use concurrent_futures_task_wire::{codec, registry};

#[task(crate = ::concurrent_futures_task_wire)]
fn halve(x: u64) -> u64 {
    x / 2
}

mod nested {
    #[concurrent_futures_macros::task(crate = concurrent_futures_task_wire)]
    pub fn shout(s: String) -> String {
        s.to_uppercase()
    }
}

#[test]
fn tasks_registered_through_the_crate_path_are_found_and_run() {
    let entry = registry::lookup(halve).unwrap();
    assert_eq!(entry.name, "task_attribute::halve");
    assert!(std::ptr::eq(
        entry,
        registry::by_task_name("task_attribute::halve").unwrap()
    ));
    let mut out = Vec::new();
    (entry.invoke)(&codec::encode(&10_u64).unwrap(), &mut out).unwrap();
    assert_eq!(codec::decode::<u64>(&out), Ok(5));

    let entry = registry::lookup(nested::shout).unwrap();
    assert_eq!(entry.name, "task_attribute::nested::shout");
    let mut out = Vec::new();
    (entry.invoke)(&codec::encode("hi").unwrap(), &mut out).unwrap();
    assert_eq!(codec::decode::<String>(&out).unwrap(), "HI");
}
