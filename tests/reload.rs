//! `reload`: the conf's `:reload-function`, called in the running daemon.

use std::fs;

use crate::util::*;

/// `reload` calls `:reload-function` in the running daemon (here one that
/// bumps a version the daemon keeps), and reports once it returned, or
/// with its error (the daemon lives on); LSB's exit codes: 7 when the
/// daemon does not run, 3 without `:reload-function`. Under a supervisor
/// its Lisp is reloaded. `force-reload` restarts a conf that cannot reload.
#[test]
fn reload_calls_the_reload_function_in_the_daemon() {
    let sb = Sandbox::new();
    let version = sb.path("version");
    let broken = sb.path("broken");
    let conf_text = |supervised: &str| {
        format!(
            "(:pid-file \"site.pid\" :name \"site\" {supervised}\n \
             :main-function #.(lambda () (defparameter cl-user::*version* 1))\n \
             :reload-function #.(lambda ()\n\
               (when (probe-file {broken}) (error \"the new code does not load\"))\n\
               (with-open-file (s {version} :direction :output :if-exists :supersede)\n\
                 (format s \"~d ~d\" (incf cl-user::*version*) (sb-posix:getpid)))))",
            broken = lisp_string(broken.to_str().unwrap()),
            version = lisp_string(version.to_str().unwrap()),
        )
    };
    let conf = sb.conf("site.conf", &conf_text(""));
    let pid_file = sb.pid_file("site.pid");
    let out = sb.run(&conf, &["reload"]);
    assert_line(
        &out,
        7,
        &format!(
            "failed reloaded - no-pid-file (pid-file = {})",
            pid_file.display()
        ),
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    let out = sb.run(&conf, &["reload"]);
    assert_line(
        &out,
        0,
        &format!(
            "success reloaded (pid = {pid} pid-file = {})",
            pid_file.display()
        ),
    );
    assert_eq!(fs::read_to_string(&version).unwrap(), format!("2 {pid}"));
    fs::write(&broken, "").unwrap();
    let out = sb.run(&conf, &["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "failed reloaded - reload-function-error (pid = {pid} pid-file = {})\n",
            pid_file.display()
        )
    );
    assert!(
        // The Lisp's report is a block: its lines after the first indented.
        stderr(&out).starts_with("ERROR: the new code does not load\n  (a condition of type SIMPLE-ERROR, signalled by :reload-function)"),
        "{}",
        stderr(&out)
    );
    assert!(alive(pid), "a failed reload is not fatal");
    fs::remove_file(&broken).unwrap();
    assert_eq!(sb.run(&conf, &["force-reload"]).status.code(), Some(0));
    assert_eq!(fs::read_to_string(&version).unwrap(), format!("3 {pid}"));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));

    // Under a supervisor: its Lisp, not the supervisor, is reloaded.
    let conf = sb.conf("site.conf", &conf_text(":restart :on-failure"));
    let out = sb.run(&conf, &["start"]);
    let supervisor = started_pid(&out);
    let status = stdout(&sb.run(&conf, &["status"]));
    let lisp: i32 = status
        .split("lisp-pid = ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(lisp, supervisor);
    // The supervisor says what it is, as ps -f shows it.
    let cmdline = fs::read_to_string(format!("/proc/{supervisor}/cmdline")).unwrap();
    assert_eq!(
        cmdline.trim_end_matches('\0'),
        "daemonization: supervisor of site"
    );
    let out = sb.run(&conf, &["reload"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&version).unwrap(), format!("2 {lisp}"));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));

    // No :reload-function: unimplemented (3); force-reload restarts.
    let plain = sb.conf(
        "plain.conf",
        "(:pid-file \"plain.pid\" :main-function #.(lambda () t))",
    );
    let first = started_pid(&sb.run(&plain, &["start"]));
    let out = sb.run(&plain, &["reload"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).starts_with("ERROR: the conf has no :reload-function"));
    let out = sb.run(&plain, &["force-reload"]);
    let second = started_pid(&out);
    assert!(stdout(&out).starts_with("success restarted (pid = "));
    assert_ne!(first, second);
    assert_eq!(sb.run(&plain, &["stop"]).status.code(), Some(0));
}

/// A daemon started before its conf had `:reload-function` has no reload
/// pipe: `reload` says so and sends nothing (SIGHUP would end it).
#[test]
fn reload_never_ends_a_daemon_started_without_a_reload_pipe() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "old.conf",
        "(:pid-file \"old.pid\" :main-function #.(lambda () t))",
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    sb.conf(
        "old.conf",
        "(:pid-file \"old.pid\" :main-function #.(lambda () t) :reload-function #.(lambda () t))",
    );
    let out = sb.run(&conf, &["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("the daemon (pid = {pid}) has no reload pipe")),
        "{}",
        stderr(&out)
    );
    assert!(alive(pid), "not sent SIGHUP");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}
