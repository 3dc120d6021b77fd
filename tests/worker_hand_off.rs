//! The worker hand-off under attack: a process of the same user watches
//! the pool's children, reads what `/proc` shows of them (the environment,
//! the command line, the descriptors) and races to take a starting
//! worker's place. A slow worker program (a shell script that sleeps
//! before it executes the real binary) gives it a whole second to do so.
//! It must never receive a task or deliver a result.
//!
//! The forger is this test binary run again (the ignored test `forger`),
//! so it is a separate process with nothing of the pool's but what any
//! same-user process can see. It knows the hand-off of earlier versions
//! (the bootstrap secret and socket path in `CONCURRENT_FUTURES_WORKER`,
//! a hello over ipc-channel), which it tries, and it tries every
//! descriptor of the worker's that `/proc` lists. Spawn workers, a Fork
//! pool's (spawned) replacements and a ForkServer pool's server all start
//! through the slow script.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concurrent_futures::{Executor, ProcessPoolExecutor, StartMethod, task};
use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcSender};
use serde::{Deserialize, Serialize};
use support::{HangGuard, SHORT_TIMEOUT};

#[task]
fn double_with_pid(x: u64) -> (u64, u32) {
    (2 * x, std::process::id())
}

/// The forger's answer to any task: one byte, 66, where the real task's
/// result is a pair.
const FORGED: u8 = 66;

/// The environment variable that tells the forger whose children to watch.
const TARGET: &str = "CF_FORGER_TARGET";

#[test]
fn a_forger_never_takes_a_workers_place() {
    let _guard = HangGuard::with_limit("the forger race", Duration::from_secs(90));
    let dir = std::env::temp_dir().join(format!("cf-hand-off-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("slow-worker.sh");
    let real = std::env::current_exe().unwrap();
    std::fs::write(
        &script,
        format!("#!/bin/sh\nsleep 1\nexec '{}' \"$@\"\n", real.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut forger = Command::new(&real)
        .args(["--exact", "forger", "--ignored", "--nocapture"])
        .env(TARGET, std::process::id().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stdout = forger.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut report = Vec::new();
    // Past libtest's own lines.
    while lines
        .recv_timeout(SHORT_TIMEOUT)
        .expect("the forger starts")
        != "READY"
    {}

    for method in [
        StartMethod::Spawn,
        StartMethod::Fork,
        StartMethod::ForkServer,
    ] {
        // One task per worker: every task after a Fork pool's first runs
        // on a replacement, and replacements are spawned, through the
        // slow script. A ForkServer pool's server starts through it.
        let pool = ProcessPoolExecutor::builder()
            .max_workers(1)
            .start_method(method)
            .allow_fork_with_threads(true)
            .worker_program(&script)
            .max_tasks_per_child(1)
            .build()
            .unwrap();
        for x in [21, 50] {
            let result = pool
                .submit(double_with_pid, x)
                .unwrap()
                .result_timeout(SHORT_TIMEOUT)
                .cloned();
            report.extend(lines.try_iter());
            let Ok((value, pid)) = result else {
                panic!("{method:?}: {result:?}; the forger's report: {report:#?}");
            };
            assert_eq!(value, 2 * x, "{method:?}: the forger's report: {report:#?}");
            if method == StartMethod::Fork && x == 21 {
                continue; // forked, not spawned: nothing to race for
            }
            // The forger found this very worker while it started and tried
            // everything on it: the test is not won by a forger that never
            // saw anything. A ForkServer pool's workers are forked by the
            // server, connected before they can first be seen; there the
            // race is the server's own start, through the slow script.
            let saw: Box<dyn Fn(&String) -> bool> = if method == StartMethod::ForkServer {
                Box::new(|l| l.starts_with("SAW ") && l.contains("CONCURRENT_FUTURES_FORK_SERVER="))
            } else {
                let prefix = format!("SAW {pid} ");
                Box::new(move |l| l.starts_with(&prefix))
            };
            let deadline = Instant::now() + SHORT_TIMEOUT;
            while !report.iter().any(&saw) && Instant::now() < deadline {
                if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
                    report.push(line);
                }
            }
            assert!(
                report.iter().any(&saw),
                "{method:?}: the forger never saw worker {pid} start: {report:#?}"
            );
        }
        drop(pool);
    }

    forger.kill().unwrap();
    forger.wait().unwrap();
    reader.join().unwrap();
    report.extend(lines.try_iter());
    let _ = std::fs::remove_dir_all(&dir);
    for line in &report {
        assert!(
            !["TOOK-OVER", "GOT-REQUEST", "SENT-FORGED", "OPENED"]
                .iter()
                .any(|bad| line.starts_with(bad)),
            "the forger got in: {report:#?}"
        );
    }
}

/// The hello of the hand-off that used a named bootstrap socket.
#[derive(Serialize, Deserialize)]
struct OldHello {
    secret: String,
    pid: u32,
    requests: IpcBytesSender,
    responses: IpcBytesReceiver,
}

/// The forger: watches the children of `CF_FORGER_TARGET` and tries to
/// take their place, printing what it saw and what worked. Run by
/// `a_forger_never_takes_a_workers_place`.
#[test]
#[ignore = "run by a_forger_never_takes_a_workers_place"]
fn forger() {
    let Some(target) = std::env::var(TARGET)
        .ok()
        .and_then(|t| t.parse::<u32>().ok())
    else {
        return;
    };
    println!("READY");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tried = std::collections::HashSet::new();
    let mut tried_fds = std::collections::HashSet::new();
    while Instant::now() < deadline {
        for pid in children_of(target) {
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            // A worker's variable, or a fork server's.
            let value = environ
                .split(|&b| b == 0)
                .filter(|var| {
                    var.starts_with(b"CONCURRENT_FUTURES_WORKER=")
                        || var.starts_with(b"CONCURRENT_FUTURES_FORK_SERVER=")
                })
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .next();
            let Some(value) = value else { continue };
            if tried.insert((pid, value.clone())) {
                println!("SAW {pid} {value}");
                take_over_by_environment(pid, &value);
            }
            // Again and again: the shell, then the worker it becomes.
            take_over_by_descriptors(pid, &mut tried_fds);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
                status
                    .lines()
                    .any(|l| l.strip_prefix("PPid:").map(str::trim) == Some(&parent.to_string()))
            })
        })
        .collect()
}

/// The old hand-off: `<secret>:<fd>:<limit>:<socket path>` in the
/// environment; connect first, greet with the secret and the worker's pid,
/// answer the first task with a forged result.
fn take_over_by_environment(pid: u32, var: &str) {
    let Some(value) = var.strip_prefix("CONCURRENT_FUTURES_WORKER=") else {
        return;
    };
    let parts: Vec<&str> = value.splitn(4, ':').collect();
    let [secret, _, _, server] = parts[..] else {
        return;
    };
    let Ok(bootstrap) = IpcSender::<OldHello>::connect(server.to_owned()) else {
        return;
    };
    let (requests, request_rx) = ipc::bytes_channel().unwrap();
    let (response_tx, responses) = ipc::bytes_channel().unwrap();
    let hello = OldHello {
        secret: secret.to_owned(),
        pid,
        requests,
        responses,
    };
    if bootstrap.send(hello).is_err() {
        return;
    }
    println!("TOOK-OVER {pid}");
    while let Ok(request) = request_rx.recv() {
        println!("GOT-REQUEST {} bytes", request.len());
        if request.len() < 9 {
            continue;
        }
        // A DONE response to the request's id with an OK outcome.
        let mut answer = vec![1_u8];
        answer.extend_from_slice(&request[1..9]);
        answer.push(0);
        answer.extend_from_slice(&1_u32.to_le_bytes());
        answer.push(FORGED);
        if response_tx.send(&answer).is_ok() {
            println!("SENT-FORGED");
        }
    }
}

/// Opens every socket the worker holds, through `/proc`, and writes a
/// forged answer into what opens. (Pipes are left alone: the pool passes
/// nothing over one, and a pipe a worker inherited from the test's own
/// environment, such as cargo's job server, is not ours to write into.)
fn take_over_by_descriptors(pid: u32, tried: &mut std::collections::HashSet<(u32, String)>) {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return;
    };
    for fd in fds.filter_map(Result::ok) {
        let link = std::fs::read_link(fd.path()).unwrap_or_default();
        let link = link.to_string_lossy();
        if !link.starts_with("socket:") || !tried.insert((pid, link.to_string())) {
            continue;
        }
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(fd.path())
        {
            Ok(mut file) => {
                println!("OPENED {pid} {} {link}", fd.file_name().to_string_lossy());
                use std::io::Write;
                let _ = file.write_all(&[FORGED; 32]);
            }
            Err(e) => println!(
                "REFUSED {pid} {} {link}: {e}",
                fd.file_name().to_string_lossy()
            ),
        }
    }
}
