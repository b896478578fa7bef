//! Runners: the lifecycle on each Lisp Debian ships (SBCL, ECL, GNU
//! CLISP), chosen by :lisp or LISP_RUNNER; #+/#- decided per Lisp.

use std::fs;

use crate::util::*;

/// The original's command sequence on one Lisp.
fn sequence(lisp: &str) {
    let sb = Sandbox::new();
    let (conf, log) = lisp_heartbeat(&sb, lisp);
    let p = sb.pid_file(&format!("{lisp}.pid")).display().to_string();
    let out = sb.run(&conf, &["start"]);
    let pid = started_pid(&out);
    assert_line(
        &out,
        0,
        &format!("success started (pid = {pid} pid-file = {p})"),
    );
    let argv0 = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    // The clisp driver execs its runtime, lisp.run.
    let program = if lisp == "clisp" { "lisp.run" } else { lisp };
    assert!(
        argv0.split('\0').next().unwrap().ends_with(program),
        "{argv0}"
    );
    assert!(!argv0.contains("beat"), "the code is not in argv: {argv0}");
    // CLISP has no threads: it beats once, from its main function.
    let wanted = if lisp == "clisp" { 1 } else { 2 };
    assert!(
        wait_until(30, || line_count(&log) >= wanted),
        "the {lisp} daemon beats"
    );
    assert_line(
        &sb.run(&conf, &["status"]),
        0,
        &format!("running (pid = {pid} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["stop"]),
        0,
        &format!("success stopped (pid = {pid} pid-file = {p})"),
    );
    assert!(!alive(pid));
    assert!(
        sb.log().contains(&format!(
            ":INFO \"Stop {lisp}-heartbeat daemon\" :PID {pid} "
        )),
        "the stop was graceful: {}",
        sb.log()
    );
    assert_line(
        &sb.run(&conf, &["status"]),
        3,
        &format!("not-running - no-pid-file (pid-file = {p})"),
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    assert_line(
        &sb.run(&conf, &["kill"]),
        0,
        &format!("success killed (pid = {pid} pid-file = {p})"),
    );
    let old = started_pid(&sb.run(&conf, &["start"]));
    let out = sb.run(&conf, &["restart"]);
    let new = started_pid(&out);
    assert_ne!(old, new);
    assert_line(
        &out,
        0,
        &format!("success restarted (pid = {new} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["stop"]),
        0,
        &format!("success stopped (pid = {new} pid-file = {p})"),
    );
}

/// A failing main function: exit 1 with the Lisp's own error text.
fn failing(lisp: &str) {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "fail.conf",
        &format!("(:pid-file \"fail.pid\" :lisp :{lisp} :main-function #.(lambda () (error \"no ~a here\" \"database\")))"),
    );
    let out = sb.run(&conf, &["start"]);
    assert_line(
        &out,
        1,
        &format!(
            "failed started - main-function-error (pid-file = {})",
            sb.pid_file("fail.pid").display()
        ),
    );
    assert!(
        stderr(&out).starts_with("ERROR: no database here\n"),
        "{}",
        stderr(&out)
    );
    assert!(!sb.pid_file("fail.pid").exists());
}

/// One conf for several Lisps: #+ is decided against the chosen Lisp.
fn features(lisp: &str, expected: &str, by_env: bool) {
    let sb = Sandbox::new();
    let chosen = sb.path("chosen");
    let key = if by_env {
        String::new()
    } else {
        format!(":lisp :{lisp}")
    };
    let conf = sb.conf(
        "which.conf",
        &format!(
            "(:pid-file \"which.pid\" {key} :main-function #.(lambda ()\n\
               (with-open-file (s {} :direction :output) (write-string #+sbcl \"a\" #+ecl \"b\" #+clisp \"c\" s))))",
            lisp_string(chosen.to_str().unwrap())
        ),
    );
    let env: &[(&str, &str)] = if by_env {
        &[("LISP_RUNNER", lisp)]
    } else {
        &[]
    };
    let out = sb.run_with(&conf, &["start"], env);
    started_pid(&out);
    assert_eq!(fs::read_to_string(&chosen).unwrap(), expected);
    assert_eq!(sb.run_with(&conf, &["stop"], env).status.code(), Some(0));
}

#[test]
fn sbcl_runs_the_lifecycle() {
    sequence("sbcl");
    failing("sbcl");
    features("sbcl", "a", false);
}

#[test]
fn ecl_runs_the_lifecycle() {
    needs_program("ecl", "ecl");
    sequence("ecl");
    failing("ecl");
    features("ecl", "b", false);
    features("ecl", "b", true);
}

/// An unhandled error after start ends an ECL daemon with status 70.
#[test]
fn ecl_late_error_exits_70() {
    needs_program("ecl", "ecl");
    let sb = Sandbox::new();
    let conf = sb.conf(
        "late.conf",
        "(:pid-file \"late.pid\" :lisp :ecl :main-function #.(lambda ()\n\
           (let ((up nil))\n\
             (mp:process-run-function \"late\" (lambda () (loop until up do (sleep 0.01)) (error \"late failure\")))\n\
             (setf up t))))",
    );
    let out = sb
        .command(&conf, &["nodaemon"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70), "{}", stderr(&out));
    assert!(stderr(&out).contains("Unhandled error in daemon: late failure"));
}

#[test]
fn clisp_runs_the_lifecycle() {
    needs_program("clisp", "clisp");
    sequence("clisp");
    failing("clisp");
    features("clisp", "c", false);
    features("clisp", "c", true);
}

/// What a Lisp cannot do is said: CLISP cannot catch SIGUSR1, so a stop
/// schedule that sends it is refused rather than killing CLISP uncleanly.
#[test]
fn clisp_refuses_a_usr1_stop_schedule() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "c.conf",
        "(:pid-file \"c.pid\" :lisp :clisp :stop-schedule \"USR1/5/KILL/5\")",
    );
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        stderr(&out),
        "ERROR: GNU CLISP cannot catch SIGUSR1, so a stop schedule with USR1 would kill it without cleanup; \
         use TERM (for example \"TERM/60/KILL/5\")\n"
    );
    assert!(!sb.pid_file("c.pid").exists());
}

/// The conf's runtime options reach the Lisp, before its own arguments:
/// SBCL reports the heap and control stack it was given, and its command
/// line holds `:lisp-options` where the README says.
#[test]
fn sbcl_gets_the_runtime_options_of_the_conf() {
    let sb = Sandbox::new();
    let report = sb.path("limits");
    let conf = sb.conf(
        "big.conf",
        &format!(
            "(:pid-file \"big.pid\" :dynamic-space-size \"1G\" :control-stack-size 3\n \
             :lisp-options (\"--merge-core-pages\" \"--no-sysinit\")\n \
             :main-function #.(lambda ()\n\
               (with-open-file (s {report} :direction :output)\n\
                 (format s \"~d ~d\" (sb-ext:dynamic-space-size)\n\
                   (- (sb-sys:sap-int (sb-vm::current-thread-offset-sap sb-vm::thread-control-stack-end-slot))\n\
                      (sb-sys:sap-int (sb-vm::current-thread-offset-sap sb-vm::thread-control-stack-start-slot)))))))",
            report = lisp_string(report.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    let pid = started_pid(&out);
    assert_eq!(
        fs::read_to_string(&report).unwrap(),
        format!("{} {}", 1u64 << 30, 3u64 << 20)
    );
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<&str> = cmdline.trim_end_matches('\0').split('\0').skip(1).collect();
    assert_eq!(
        args,
        [
            "--noinform",
            "--disable-ldb",
            "--lose-on-corruption",
            "--dynamic-space-size",
            "1024",
            "--control-stack-size",
            "3",
            "--merge-core-pages",
            "--no-sysinit",
            "--disable-debugger",
            "--load",
            "/dev/fd/3"
        ]
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// ECL takes the heap size in bytes; GNU CLISP has no such option, and a
/// conf that asks for one is refused before anything starts.
#[test]
fn other_lisps_get_the_heap_size_or_say_they_have_none() {
    needs_program("ecl", "ecl");
    needs_program("clisp", "clisp");
    let sb = Sandbox::new();
    let report = sb.path("heap");
    let conf = sb.conf(
        "ecl.conf",
        &format!(
            "(:pid-file \"ecl.pid\" :lisp :ecl :dynamic-space-size 700\n \
             :main-function #.(lambda () (with-open-file (s {report} :direction :output)\n\
               (format s \"~d\" (ext:get-limit 'ext:heap-size)))))",
            report = lisp_string(report.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    started_pid(&out);
    assert_eq!(
        fs::read_to_string(&report).unwrap(),
        (700u64 << 20).to_string()
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));

    let conf = sb.conf(
        "clisp.conf",
        "(:pid-file \"clisp.pid\" :lisp :clisp :control-stack-size 16)",
    );
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        stderr(&out),
        "ERROR: GNU CLISP has no runtime option for :control-stack-size (it grows its memory as needed): \
         remove :control-stack-size from the conf, or run the daemon on another Lisp (:lisp :sbcl)\n"
    );
    assert!(!sb.pid_file("clisp.pid").exists());
}

/// `reload` on ECL, which catches SIGHUP too; GNU CLISP cannot, so a conf
/// with `:reload-function` is refused for it before anything starts.
#[test]
fn ecl_reloads_and_clisp_says_it_cannot() {
    needs_program("ecl", "ecl");
    needs_program("clisp", "clisp");
    let sb = Sandbox::new();
    let mark = sb.path("reloaded");
    let conf = sb.conf(
        "ecl.conf",
        &format!(
            "(:pid-file \"ecl.pid\" :lisp :ecl :main-function #.(lambda () t)\n \
             :reload-function #.(lambda () (with-open-file (s {} :direction :output) (print :reloaded s))))",
            lisp_string(mark.to_str().unwrap())
        ),
    );
    started_pid(&sb.run(&conf, &["start"]));
    let out = sb.run(&conf, &["reload"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(mark.exists());
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));

    let conf = sb.conf(
        "clisp.conf",
        "(:pid-file \"clisp.pid\" :lisp :clisp :reload-function #.(lambda () t))",
    );
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        stderr(&out),
        "ERROR: GNU CLISP cannot catch SIGHUP, so :reload-function could never be called: \
         remove it from the conf, or run the daemon on SBCL or ECL (:lisp :sbcl)\n"
    );
}
