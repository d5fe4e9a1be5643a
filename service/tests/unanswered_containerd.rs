//! `service` against a containerd that accepts connections and never answers (what a stopped or wedged
//! containerd looks like): every command that talks to it ends at `-rpc-timeout` with an error naming the
//! call, instead of hanging. Needs no root and no containerd: the socket is a plain listener.

use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Only guards against a hung test; the commands end long before.
const PATIENCE: Duration = Duration::from_secs(300);

fn run_until_exit(args: &[&str], root: &std::path::Path) -> (Option<i32>, String) {
    let out_file = root.join("output");
    let file = std::fs::File::create(&out_file).expect("output file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_service"))
        .args(args)
        .env("GUESTKIT_SERVICE_ROOT", root)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup"))
        .stderr(file)
        .spawn()
        .expect("run service");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&out_file).unwrap_or_default();
    assert!(status.is_some(), "`service {args:?}` hung:\n{output}");
    eprintln!(
        "service {args:?} ended after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    (status.and_then(|s| s.code()), output)
}

#[test]
fn commands_end_at_the_rpc_timeout_when_containerd_never_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("containerd.sock");
    let listener = UnixListener::bind(&socket).expect("listen");
    // Accept every connection and hold it open without a byte in reply.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let services = dir.path().join("services");
    std::fs::create_dir_all(services.join("web")).expect("bundle dir");
    let sock = socket.to_str().expect("utf-8");
    let path = services.to_str().expect("utf-8");
    for command in ["shutdown", "ls", "stop"] {
        let mut args = vec![command, "-sock", sock, "-path", path, "-rpc-timeout", "1"];
        if command == "stop" {
            args.push("web");
        }
        let (code, output) = run_until_exit(&args, dir.path());
        assert!(code.is_some(), "{command}: killed by a signal:\n{output}");
        // `ls` shows what it could not ask about as absent; the others fail naming the deadline.
        if command != "ls" {
            assert_eq!(code, Some(1), "{command}: exit status:\n{output}");
            assert!(
                output.contains("containerd did not answer within 1.0s"),
                "{command}: no deadline error:\n{output}"
            );
        }
    }
}
