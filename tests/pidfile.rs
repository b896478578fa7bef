//! The pid file: what a command believes of it, and what it refuses.

use std::fs;
use std::process::{Command, Stdio};

use crate::util::*;

/// A pid file naming a live process that is not our daemon: stale, and
/// neither stop nor kill signals it.
#[test]
fn unrelated_process_in_pid_file_is_never_signalled() {
    let sb = Sandbox::new();
    let conf = sb.conf("x.conf", "(:pid-file \"x.pid\")");
    let mut sleep = Command::new("sleep").arg("60").spawn().unwrap();
    let spid = sleep.id() as i32;
    let pf = sb.pid_file("x.pid");
    let p = pf.display();
    fs::write(&pf, format!("{spid}\n")).unwrap();
    assert_line(
        &sb.run(&conf, &["status"]),
        1,
        &format!("not-running - service-unavailable (pid = {spid} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["stop"]),
        0,
        &format!("failed stopped - not-running (pid = {spid} pid-file = {p})"),
    );
    assert!(!pf.exists(), "the stale pid file is removed");
    fs::write(&pf, format!("{spid}\n")).unwrap();
    assert_line(
        &sb.run(&conf, &["kill"]),
        0,
        &format!("failed killed - not-running (pid = {spid} pid-file = {p})"),
    );
    assert!(alive(spid), "sleep was not signalled");
    fs::write(&pf, format!("{spid}\n")).unwrap();
    assert_line(
        &sb.run(&conf, &["zap"]),
        0,
        &format!("success zapped (pid-file = {p})"),
    );
    assert!(alive(spid));
    sleep.kill().unwrap();
    sleep.wait().unwrap();
}

/// A symlinked pid file is refused, and its target left alone.
#[test]
fn symlinked_pid_file_is_refused() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "s.conf",
        "(:pid-file \"s.pid\" :main-function #.(lambda () 1))",
    );
    let target = sb.path("target");
    fs::write(&target, "precious\n").unwrap();
    std::os::unix::fs::symlink(&target, sb.pid_file("s.pid")).unwrap();
    let p = sb.pid_file("s.pid");
    let out = sb.run(&conf, &["start"]);
    assert_line(
        &out,
        1,
        &format!(
            "failed started - internal-error (pid-file = {})",
            p.display()
        ),
    );
    assert_eq!(
        stderr(&out),
        format!(
            "ERROR: refusing the pid file {0}: it is a symbolic link; remove it (rm {0}); the tool writes its own\n",
            p.display()
        )
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");
    assert_eq!(sb.run(&conf, &["status"]).status.code(), Some(4));
}

/// A pid file writable by others is refused.
#[test]
fn group_writable_pid_file_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let sb = Sandbox::new();
    let conf = sb.conf("w.conf", "(:pid-file \"w.pid\")");
    let pf = sb.pid_file("w.pid");
    fs::write(&pf, "1\n").unwrap();
    fs::set_permissions(&pf, fs::Permissions::from_mode(0o666)).unwrap();
    let out = sb.run(&conf, &["stop"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "ERROR: refusing the pid file {0}: writable by others (mode 0666); remove it (rm {0}); the tool writes its own\n",
            pf.display()
        )
    );
    assert!(pf.exists());
}

/// A pid file written by the original Lisp tool (no lock, no newline),
/// naming a live SBCL started before it: trusted, and stop works.
#[test]
fn legacy_pid_file_of_a_live_lisp_is_trusted() {
    let sb = Sandbox::new();
    let ready = sb.path("ready");
    let mut lisp = Command::new("sbcl")
        .args(["--noinform", "--non-interactive", "--eval"])
        .arg(format!(
            "(progn (with-open-file (s {} :direction :output) (print 1 s)) (sleep 600))",
            lisp_string(ready.to_str().unwrap())
        ))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = lisp.id() as i32;
    sb.track(pid);
    assert!(wait_until(30, || ready.exists()));
    let conf = sb.conf("legacy.conf", "(:pid-file \"legacy.pid\")");
    let pf = sb.pid_file("legacy.pid");
    fs::write(&pf, pid.to_string()).unwrap();
    let p = pf.display();
    assert_line(
        &sb.run(&conf, &["status"]),
        0,
        &format!("running (pid = {pid} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["start"]),
        0,
        &format!("success started - already-running (pid = {pid} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["stop"]),
        0,
        &format!("success stopped (pid = {pid} pid-file = {p})"),
    );
    assert!(lisp.wait().is_ok());
    assert!(!pf.exists());
}
