//! `nodaemon`: the Lisp in the foreground, at a terminal.

use std::fs;
use std::process::Stdio;

use crate::util::*;

/// `nodaemon` runs in the foreground, prints only its stop line, stops on SIGTERM
/// with status 0; an error after start ends it with status 70.
#[test]
fn nodaemon_runs_in_the_foreground() {
    let sb = Sandbox::new();
    let ran = sb.path("ran");
    let conf = sb.conf(
        "f.conf",
        &format!(
            "(:pid-file \"f.pid\" :main-function #.(lambda ()\n\
             (with-open-file (s {} :direction :output) (print (sb-posix:getpid) s))))",
            lisp_string(ran.to_str().unwrap())
        ),
    );
    let child = sb
        .command(&conf, &["nodaemon"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sb.track(child.id() as i32);
    assert!(wait_until(30, || fs::read_to_string(&ran)
        .is_ok_and(|t| t.ends_with(' '))));
    let pid: i32 = fs::read_to_string(&ran).unwrap().trim().parse().unwrap();
    assert_eq!(
        pid,
        child.id() as i32,
        "no fork: the Lisp is the process started"
    );
    assert!(!sb.pid_file("f.pid").exists(), "no pid file");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), ""));
    // Its one line, the stop, on standard error (the journal's under a unit).
    assert_eq!(stderr(&out), "Stop daemon (signal 15)\n");

    let conf = sb.conf(
        "e.conf",
        "(:pid-file \"e.pid\" :main-function #.(lambda ()\n\
         (let ((up nil))\n\
           (sb-thread:make-thread (lambda () (loop until up do (sleep 0.01)) (error \"late failure\")))\n\
           (setf up t))))",
    );
    let out = sb
        .command(&conf, &["nodaemon"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70), "{}", stderr(&out));
    assert!(stderr(&out).contains("late failure"));
}

/// `nodaemon` at a terminal (a pty made by script(1)): Ctrl-C stops the
/// Lisp as SIGTERM does, with the stop line and exit 0, not as an
/// unhandled interactive interrupt.
#[test]
fn ctrl_c_stops_nodaemon_at_a_terminal() {
    use std::io::{Read as _, Write as _};
    let sb = Sandbox::new();
    let ready = sb.path("ready");
    let conf = sb.conf(
        "fg.conf",
        &format!(
            "(:pid-file \"fg.pid\" :name \"fg\"\n \
             :main-function #.(lambda () (with-open-file (s {} :direction :output) (print :up s))))",
            lisp_string(ready.to_str().unwrap())
        ),
    );
    // `exec`: script(1) runs `$SHELL -c`, and a non-interactive dash stays
    // as the parent and dies of the Ctrl-C itself; an interactive shell
    // leaves the tool alone in the terminal's foreground, as here.
    let inner = format!("exec {} {} nodaemon", bin(), conf.display());
    let mut script = sb.at_a_terminal(&inner, Stdio::piped(), Stdio::piped());
    assert!(
        wait_until(30, || ready.exists()),
        "the Lisp ran its main function"
    );
    let mut stdin = script.stdin.take().unwrap();
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    assert!(
        wait_until(30, || script.try_wait().unwrap().is_some()),
        "Ctrl-C ended it"
    );
    let mut out = String::new();
    script
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(script.wait().unwrap().code(), Some(0), "{out}");
    assert!(out.contains("Stop fg daemon (signal 2)"), "{out}");
    assert!(!out.contains("Unhandled"), "{out}");
}

/// `nodaemon` of a conf whose daemon runs is refused: its Lisp would take
/// the daemon's control socket (eval and status -v reached a Lisp that
/// then ended, and the daemon was unreachable). The daemon is left as it
/// was, still answering.
#[test]
fn nodaemon_beside_the_running_daemon_is_refused() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "b.conf",
        "(:pid-file \"b.pid\" :main-function #.(lambda () t))",
    );
    let out = sb.run(&conf, &["start"]);
    let pid = started_pid(&out);
    sb.track(pid);
    let nodaemon = sb
        .command(&conf, &["nodaemon"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Tracked: a nodaemon that ran would never end by itself.
    sb.track(nodaemon.id() as i32);
    let id = nodaemon.id() as i32;
    assert!(
        wait_until(30, || proc_status(id, "State").starts_with('Z')),
        "nodaemon ran beside the daemon"
    );
    let out = nodaemon.wait_with_output().unwrap();
    assert_eq!(
        (out.status.code(), stdout(&out), stderr(&out)),
        (
            Some(1),
            String::new(),
            format!("ERROR: the daemon already runs (pid {pid}): stop it first, or use it\n")
        )
    );
    let out = sb.run(&conf, &["eval", "(sb-posix:getpid)"]);
    assert_eq!(stdout(&out), format!("{pid}\n"), "{}", stderr(&out));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}
