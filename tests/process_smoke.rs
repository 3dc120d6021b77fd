use concurrent_futures::{Executor, ProcessPoolExecutor, StartMethod, TaskError, task};

#[task]
fn square(x: u64) -> u64 {
    x * x
}

#[task]
fn boom(_: ()) -> u8 {
    panic!("boom")
}

#[task]
fn abort(_: ()) -> u8 {
    std::process::abort()
}

#[test]
fn smoke() {
    for method in [StartMethod::Spawn, StartMethod::Fork] {
        let t = std::time::Instant::now();
        let pool = ProcessPoolExecutor::builder()
            .max_workers(2)
            .start_method(method)
            .build()
            .unwrap();
        assert_eq!(pool.submit(square, 7).unwrap().result(), Ok(&49));
        eprintln!("{method:?} first result {:?}", t.elapsed());
        let v: Vec<u64> = pool.map(square, 0..1000).map(Result::unwrap).collect();
        assert_eq!(v[999], 998001);
        assert!(matches!(
            pool.submit(boom, ()).unwrap().into_result(),
            Err(TaskError::Panicked { .. })
        ));
        let e = pool.submit(abort, ()).unwrap().into_result();
        eprintln!("{e:?} {}", e.clone().unwrap_err());
        assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
        let t = std::time::Instant::now();
        for i in 0..2000u64 {
            pool.submit(square, i).unwrap().result().unwrap();
        }
        eprintln!("{method:?} per task {:?}", t.elapsed() / 2000);
    }
}
