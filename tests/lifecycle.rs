//! The daemon lifecycle on real SBCL: start, restart and the original's
//! command sequence, with the daemons' work checked for real (files they
//! write, a swank client); failures that leave nothing behind.

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;

use crate::util::*;

/// The original's command sequence, each line and exit code checked.
#[test]
fn original_sequence() {
    let sb = Sandbox::new();
    let (conf, log) = heartbeat(&sb);
    let pf = sb.pid_file("heartbeat.pid");
    let p = pf.display();

    let out = sb.run(&conf, &["start"]);
    let pid1 = started_pid(&out);
    assert_line(
        &out,
        0,
        &format!("success started (pid = {pid1} pid-file = {p})"),
    );
    assert_eq!(fs::read_to_string(&pf).unwrap(), format!("{pid1}\n"));
    assert!(wait_until(10, || line_count(&log) >= 2), "the daemon beats");
    assert_line(
        &sb.run(&conf, &["status"]),
        0,
        &format!("running (pid = {pid1} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["stop"]),
        0,
        &format!("success stopped (pid = {pid1} pid-file = {p})"),
    );
    assert!(!alive(pid1));
    assert!(!pf.exists());
    assert_line(
        &sb.run(&conf, &["status"]),
        3,
        &format!("not-running - no-pid-file (pid-file = {p})"),
    );

    let out = sb.run(&conf, &["start"]);
    let pid2 = started_pid(&out);
    assert_line(
        &out,
        0,
        &format!("success started (pid = {pid2} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["kill"]),
        0,
        &format!("success killed (pid = {pid2} pid-file = {p})"),
    );
    assert!(!alive(pid2));
    assert_line(
        &sb.run(&conf, &["status"]),
        3,
        &format!("not-running - no-pid-file (pid-file = {p})"),
    );

    let pid3 = started_pid(&sb.run(&conf, &["start"]));
    let out = sb.run(&conf, &["restart"]);
    let pid4 = started_pid(&out);
    assert_ne!(pid3, pid4);
    assert!(!alive(pid3));
    assert_line(
        &out,
        0,
        &format!("success restarted (pid = {pid4} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["status"]),
        0,
        &format!("running (pid = {pid4} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["stop"]),
        0,
        &format!("success stopped (pid = {pid4} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["stop"]),
        0,
        &format!("failed stopped - no-pid-file (pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["kill"]),
        0,
        &format!("failed killed - no-pid-file (pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["zap"]),
        0,
        &format!("failed zapped - no-pid-file (pid-file = {p})"),
    );
    // Every command is logged with its outcome; a start's steps as trace.
    let log = sb.log();
    for expected in [
        format!(":INFO \"success started (pid = {pid1} pid-file = {p})\" :PID "),
        format!(":TRACE \"forked the daemon process {pid1}\" :PID "),
        ":TRACE \"the Lisp is ready\"".to_string(),
        format!(":INFO \"success restarted (pid = {pid4} pid-file = {p})\" :PID "),
        format!(":INFO \"running (pid = {pid4} pid-file = {p})\" :PID "),
        ":NAME \"heartbeat\" :COMMAND \"stop\" :USER ".to_string(),
    ] {
        let found = log
            .lines()
            .any(|l| l.starts_with("(:DAEMONIZATION ") && l.contains(&expected));
        assert!(found, "{expected} not in\n{log}");
    }
}

/// Swank end to end: when start returns, the server answers, and the pid
/// it reports is the one in the start line and in the pid file.
#[test]
fn swank_answers_when_start_returns() {
    let sb = Sandbox::new();
    let port = free_port();
    let conf = sb.example("swank.conf", &[(":port 4005", &format!(":port {port}"))]);
    let out = sb.run(&conf, &["start"]);
    let pid = started_pid(&out);
    assert_line(
        &out,
        0,
        &format!(
            "success started (pid = {pid} pid-file = {})",
            sb.pid_file("swank.pid").display()
        ),
    );
    let reply = swank(
        port,
        "(:emacs-rex (swank:connection-info) \"COMMON-LISP-USER\" t 1)",
    );
    assert!(reply.contains(&format!(":pid {pid} ")), "{reply}");
    assert_eq!(
        fs::read_to_string(sb.pid_file("swank.pid")).unwrap().trim(),
        pid.to_string()
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert!(!alive(pid));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server is gone"
    );
}

/// A failing main function: exit 1, the Lisp's error text, nothing left.
#[test]
fn failing_main_function_leaves_nothing_behind() {
    let sb = Sandbox::new();
    let marker = sb.path("lisp.pid");
    let conf = sb.conf(
        "fail.conf",
        &format!(
            "(:pid-file \"fail.pid\" :main-function #.(lambda ()\n\
             (with-open-file (s {} :direction :output) (print (sb-posix:getpid) s))\n\
             (load \"/nonexistent/daemonization-test.lisp\")))",
            lisp_string(marker.to_str().unwrap())
        ),
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
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "ERROR: Couldn't load \"/nonexistent/daemonization-test.lisp\": file does not exist.\n"
        ),
        "{err}"
    );
    assert!(err.contains("SB-INT:SIMPLE-FILE-ERROR"), "{err}");
    let lisp: i32 = fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    assert!(!alive(lisp), "the failed Lisp is gone");
    assert!(!sb.pid_file("fail.pid").exists());
}

/// The failing example, as shipped.
#[test]
fn failing_example_reports_the_missing_file() {
    let sb = Sandbox::new();
    let conf = sb.example("failing.conf", &[]);
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/daemonization-example/start.lisp"));
    assert!(!sb.pid_file("failing.pid").exists());
}

/// 20 concurrent starts of one conf: one daemon, the others already-running.
#[test]
fn concurrent_starts_make_one_daemon() {
    let sb = Sandbox::new();
    let runs = sb.path("runs.log");
    let conf = sb.conf(
        "one.conf",
        &format!(
            "(:pid-file \"one.pid\" :main-function #.(lambda ()\n\
             (with-open-file (s {} :direction :output :if-exists :append :if-does-not-exist :create)\n\
             (format s \"~d~%\" (sb-posix:getpid)))))",
            lisp_string(runs.to_str().unwrap())
        ),
    );
    let children: Vec<_> = (0..20)
        .map(|_| {
            sb.command(&conf, &["start"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let pids: Vec<i32> = outs.iter().filter_map(|o| pid_in(&stdout(o))).collect();
    for pid in &pids {
        sb.track(*pid);
    }
    assert!(
        outs.iter().all(|o| o.status.code() == Some(0)),
        "{:?}",
        outs.iter().map(stderr).collect::<Vec<_>>()
    );
    let started = outs
        .iter()
        .filter(|o| stdout(o).starts_with("success started (pid = "))
        .count();
    let already = outs
        .iter()
        .filter(|o| stdout(o).starts_with("success started - already-running (pid = "))
        .count();
    assert_eq!((started, already), (1, 19));
    assert_eq!(pids.len(), 20);
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");
    assert_eq!(
        fs::read_to_string(sb.pid_file("one.pid")).unwrap(),
        format!("{}\n", pids[0])
    );
    assert_eq!(
        fs::read_to_string(&runs).unwrap(),
        format!("{}\n", pids[0]),
        "one Lisp ran"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// start killed with SIGKILL while it waits: the daemon goes on, and the
/// next status and start see it.
#[test]
fn start_killed_while_waiting() {
    let sb = Sandbox::new();
    let go = sb.path("go");
    let conf = sb.conf(
        "slow.conf",
        &format!(
            "(:pid-file \"slow.pid\" :main-function #.(lambda ()\n\
             (loop until (probe-file {}) do (sleep 0.05))))",
            lisp_string(go.to_str().unwrap())
        ),
    );
    let mut starter = sb
        .command(&conf, &["start"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pf = sb.pid_file("slow.pid");
    assert!(wait_until(30, || fs::read_to_string(&pf)
        .is_ok_and(|t| t.ends_with('\n'))));
    let pid: i32 = fs::read_to_string(&pf).unwrap().trim().parse().unwrap();
    sb.track(pid);
    starter.kill().unwrap();
    starter.wait().unwrap();
    let p = pf.display();
    // Alive, and not ready yet: activating (exit 0, as for running).
    assert_line(
        &sb.run(&conf, &["status"]),
        0,
        &format!("activating (pid = {pid} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["start"]),
        0,
        &format!("success started - already-running (pid = {pid} pid-file = {p})"),
    );
    fs::write(&go, "").unwrap();
    assert_line(
        &sb.run(&conf, &["stop"]),
        0,
        &format!("success stopped (pid = {pid} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["status"]),
        3,
        &format!("not-running - no-pid-file (pid-file = {p})"),
    );
}

#[test]
fn lisp_not_found_exits_5() {
    let sb = Sandbox::new();
    let conf = sb.conf("n.conf", "(:pid-file \"n.pid\")");
    let out = sb.run_with(
        &conf,
        &["start"],
        &[("LISP_RUNNER", "/nonexistent/bin/sbcl")],
    );
    assert_line(
        &out,
        5,
        &format!(
            "failed started - lisp-not-found (pid-file = {})",
            sb.pid_file("n.pid").display()
        ),
    );
    assert_eq!(
        stderr(&out),
        "ERROR: the Lisp program \"/nonexistent/bin/sbcl\" was not found; install it (on Debian: apt-get install sbcl) \
         or choose another with the LISP_RUNNER environment variable\n"
    );
}

/// Ready not within the start timeout: reported as still initializing.
#[test]
fn slow_start_is_still_initializing() {
    let sb = Sandbox::new();
    let go = sb.path("go");
    let conf = sb.conf(
        "slow.conf",
        &format!(
            "(:pid-file \"slow.pid\" :start-timeout 0.5 :main-function #.(lambda ()\n\
             (loop until (probe-file {}) do (sleep 0.05))))",
            lisp_string(go.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    let pid = pid_in(&stdout(&out)).unwrap();
    sb.track(pid);
    assert_line(
        &out,
        0,
        &format!(
            "success started (pid = {pid} pid-file = {}) - still initializing",
            sb.pid_file("slow.pid").display()
        ),
    );
    assert_eq!(
        stderr(&out),
        "WARNING: the daemon is still initializing: :main-function has not returned within 0.5 s. \
         It must return once the service is up (start the server, then return), \
         or say so itself with :ready :notify and (daemonization:ready); \
         if it only needs longer, give start more time with --timeout or :start-timeout\n"
    );
    fs::write(&go, "").unwrap();
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// The Lisp dying before it is ready: how it died, nothing left.
#[test]
fn death_before_ready_is_reported() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "d.conf",
        "(:pid-file \"d.pid\" :main-function #.(lambda () (sb-ext:exit :code 3 :abort t)))",
    );
    let out = sb.run(&conf, &["start"]);
    assert_line(
        &out,
        1,
        &format!(
            "failed started - died (pid-file = {})",
            sb.pid_file("d.pid").display()
        ),
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("ERROR: the Lisp (pid ")
            && err.ends_with(") exited with status 3 before it was ready\n"),
        "{err}"
    );
    assert!(!sb.pid_file("d.pid").exists());
}

/// `:before-parent-exit-fn` is called with (pid 10) once the daemon is up.
#[test]
fn before_parent_exit_fn_gets_pid_and_status() {
    let sb = Sandbox::new();
    let record = sb.path("record");
    let conf = sb.conf(
        "b.conf",
        &format!(
            "(:pid-file \"b.pid\" :main-function #.(lambda () t)\n\
             :before-parent-exit-fn #'(lambda (pid status)\n\
               (with-open-file (s {} :direction :output) (prin1 (list pid status) s))))",
            lisp_string(record.to_str().unwrap())
        ),
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    assert_eq!(fs::read_to_string(&record).unwrap(), format!("({pid} 10)"));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// The daemon process is set up as a daemon: not a session leader, no
/// terminal, cwd "/", the conf's umask, the code not in argv, no stray
/// descriptors, and its pid directory created 0755.
#[test]
fn daemon_process_is_set_up_properly() {
    use std::os::unix::fs::PermissionsExt as _;
    let sb = Sandbox::new();
    let made = sb.path("made");
    let conf = sb.conf(
        "setup.conf",
        &format!(
            "(:pid-file \"run/sub/setup.pid\" :pid-file-dir :this-dir :os-params (:linux-umask #o027)\n\
             :main-function #.(lambda () (let ((secret \"hunter2\"))\n\
               (with-open-file (s {} :direction :output) (format s \"~a ~a\" secret (sb-posix:getcwd))))))",
            lisp_string(made.to_str().unwrap())
        ),
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    let pid_dir = sb.path("run/sub");
    assert_eq!(
        fs::metadata(&pid_dir).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(fs::read_to_string(&made).unwrap(), "hunter2 /");
    assert_eq!(
        fs::metadata(&made).unwrap().permissions().mode() & 0o777,
        0o640,
        "umask #o027"
    );
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let (sid, tty) = (fields[3].parse::<i32>().unwrap(), fields[4]);
    assert_ne!(sid, pid, "not a session leader");
    assert_eq!(tty, "0", "no controlling terminal");
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!cmdline.contains("hunter2"), "{cmdline}");
    let null = Path::new("/dev/null");
    for fd in 0..3 {
        assert_eq!(fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap(), null);
    }
    let lock = fs::read_link(format!("/proc/{pid}/fd/5")).unwrap();
    assert_eq!(lock, pid_dir.join("setup.pid.lock"));
    assert!(holds_lock(pid, &lock), "the daemon holds the lock on it");
    // The Lisp closes it right after writing "ready", which start may see first.
    let ready_fd = format!("/proc/{pid}/fd/4");
    assert!(
        wait_until(10, || !Path::new(&ready_fd).exists()),
        "the readiness pipe is closed once ready"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// restart whose new start fails: the old daemon is stopped, the failure
/// is reported as for start, and no pid file or process is left.
#[test]
fn restart_with_a_failing_start_leaves_nothing() {
    let sb = Sandbox::new();
    let init = sb.path("init.lisp");
    fs::write(&init, "(defvar *ok* t)\n").unwrap();
    let conf = sb.conf(
        "r.conf",
        &format!(
            "(:pid-file \"r.pid\" :main-function #.(lambda () (load {})))",
            lisp_string(init.to_str().unwrap())
        ),
    );
    let old = started_pid(&sb.run(&conf, &["start"]));
    fs::remove_file(&init).unwrap();
    let out = sb.run(&conf, &["restart"]);
    let p = sb.pid_file("r.pid");
    assert_line(
        &out,
        1,
        &format!(
            "failed restarted - main-function-error (pid-file = {})",
            p.display()
        ),
    );
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(!alive(old));
    assert!(!p.exists());
    assert_line(
        &sb.run(&conf, &["status"]),
        3,
        &format!("not-running - no-pid-file (pid-file = {})", p.display()),
    );
}

/// Paths relative to the home of the user who runs the command (`~/`, as
/// SBCL parsed them for the original): the pid file and `:output` land
/// there. Run as the test user (as root) with its own HOME.
#[test]
fn tilde_paths_start_in_the_callers_home() {
    let sb = open_sandbox();
    let user = root().then(test_user);
    let home = sb.path("home");
    fs::create_dir_all(home.join("logs")).unwrap();
    if let Some(user) = &user {
        for dir in [sb.dir.path(), home.as_path(), &home.join("logs")] {
            std::os::unix::fs::chown(dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .unwrap();
        }
    }
    let conf = sb.conf(
        "app.conf",
        "(:pid-file \"~/run/app.pid\" :output #P\"~/logs/app.log\"\n \
         :main-function #.(lambda () (format t \"up~%\") (finish-output)))",
    );
    let run = |command: &str| {
        let mut c = match &user {
            Some(user) => sb.command_as(&conf, &[command], user),
            None => sb.command(&conf, &[command]),
        };
        c.env("HOME", &home).env_remove("DAEMONIZATION_PID_DIR");
        c.output().unwrap()
    };
    let out = run("start");
    let pid = started_pid(&out);
    sb.track(pid);
    let pid_file = home.join("run/app.pid");
    assert_line(
        &out,
        0,
        &format!(
            "success started (pid = {pid} pid-file = {})",
            pid_file.display()
        ),
    );
    assert!(wait_until(10, || fs::read_to_string(
        home.join("logs/app.log")
    )
    .is_ok_and(|t| t == "up\n")));
    assert_eq!(run("stop").status.code(), Some(0));
    assert!(!alive(pid));
}

/// `try-restart` (LSB): restarts a running daemon; of one that does not
/// run it starts nothing and exits 0.
#[test]
fn try_restart_restarts_only_a_running_daemon() {
    let sb = Sandbox::new();
    let (conf, _) = heartbeat(&sb);
    let pid_file = sb.pid_file("heartbeat.pid");
    let out = sb.run(&conf, &["try-restart"]);
    assert_line(
        &out,
        0,
        &format!(
            "success restarted - not-running (pid-file = {})",
            pid_file.display()
        ),
    );
    assert!(!pid_file.exists());
    let first = started_pid(&sb.run(&conf, &["start"]));
    let out = sb.run(&conf, &["try-restart"]);
    let second = started_pid(&out);
    assert_ne!(first, second);
    assert!(!alive(first));
    assert_line(
        &out,
        0,
        &format!(
            "success restarted (pid = {second} pid-file = {})",
            pid_file.display()
        ),
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}
