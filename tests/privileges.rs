//! Users, groups, capabilities, safe confs and captured output, as root
//! (CI runs as root; the test user is created here). Run as another user,
//! these tests say so and check nothing.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use crate::util::*;

/// A directory in the sandbox the test user may write.
fn user_dir(sb: &Sandbox, user: &nix::unistd::User) -> std::path::PathBuf {
    let dir = sb.path("user");
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(user.uid.as_raw()), Some(user.gid.as_raw())).unwrap();
    dir
}

/// The daemon runs as the user: uid and gid on all four fields, exactly the
/// user's groups, its HOME/USER/LOGNAME; the pid file stays root's and the
/// daemon holds it read-only.
#[test]
fn daemon_runs_as_the_user() {
    needs_root();
    let user = test_user();
    let sb = open_sandbox();
    let conf = sb.conf(
        "u.conf",
        "(:pid-file \"u.pid\" :user \"dztest\" :main-function #.(lambda () t))",
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    let (uid, gid) = (user.uid.to_string(), user.gid.to_string());
    assert_eq!(proc_status(pid, "Uid"), [uid.as_str(); 4].join("\t"));
    assert_eq!(proc_status(pid, "Gid"), [gid.as_str(); 4].join("\t"));
    let name = std::ffi::CString::new("dztest").unwrap();
    let mut expected: Vec<u32> = nix::unistd::getgrouplist(&name, user.gid)
        .unwrap()
        .iter()
        .map(|g| g.as_raw())
        .collect();
    expected.sort();
    expected.dedup();
    let mut groups: Vec<u32> = proc_status(pid, "Groups")
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, expected);
    assert!(groups.len() >= 2, "the supplementary group is there");
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    for var in [
        format!("HOME={}", user.dir.display()),
        "USER=dztest".into(),
        "LOGNAME=dztest".into(),
    ] {
        assert!(environ.contains(&var), "{var} not in {environ:?}");
    }
    let pid_file = sb.pid_file("u.pid");
    assert_eq!(fs::metadata(&pid_file).unwrap().uid(), 0);
    assert_eq!(fs::metadata(&pid_file).unwrap().mode() & 0o777, 0o644);
    // The daemon holds its lock on the root-only lock file, and no
    // descriptor of its pid file: it cannot rewrite it.
    let lock = fs::read_link(format!("/proc/{pid}/fd/5")).unwrap();
    assert_eq!(lock, sb.pid_file("u.pid.lock"));
    assert_eq!(fs::metadata(&lock).unwrap().mode() & 0o777, 0o600);
    let fdinfo = fs::read_to_string(format!("/proc/{pid}/fdinfo/5")).unwrap();
    let flags = fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .unwrap()
        .trim();
    assert_eq!(
        u32::from_str_radix(flags, 8).unwrap() & 0o3,
        0,
        "the lock file is held read-only"
    );
    for fd in fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let target = fs::read_link(fd.unwrap().path()).unwrap();
        assert_ne!(
            target, pid_file,
            "the daemon holds no descriptor of its pid file"
        );
    }
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// A port below 1024 nobody listens on.
fn free_privileged_port() -> u16 {
    (600..1000)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024")
}

fn binding_conf(sb: &Sandbox, name: &str, port: u16, keep: bool) -> std::path::PathBuf {
    sb.conf(
        name,
        &format!(
            "(:pid-file \"{name}.pid\" :user \"dztest\" :listen-privileged-ports {}\n\
             :main-function #.(lambda ()\n\
               (let ((s (make-instance 'sb-bsd-sockets:inet-socket :type :stream :protocol :tcp)))\n\
                 (setf (sb-bsd-sockets:sockopt-reuse-address s) t)\n\
                 (sb-bsd-sockets:socket-bind s #(127 0 0 1) {port})\n\
                 (sb-bsd-sockets:socket-listen s 5)\n\
                 (defparameter cl-user::*listener* s))))",
            if keep { "t" } else { "nil" }
        ),
    )
}

/// With :listen-privileged-ports t the user's daemon binds a port below
/// 1024 and has exactly CAP_NET_BIND_SERVICE; with nil it cannot, and has
/// no capability at all.
#[test]
fn privileged_ports() {
    needs_root();
    test_user();
    let sb = open_sandbox();
    let port = free_privileged_port();
    let conf = binding_conf(&sb, "bind", port, true);
    let out = sb.run(&conf, &["start"]);
    let pid = started_pid(&out);
    TcpStream::connect(("127.0.0.1", port)).expect("the daemon listens");
    assert_eq!(proc_status(pid, "CapEff"), "0000000000000400");
    assert_eq!(proc_status(pid, "CapPrm"), "0000000000000400");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));

    let conf = binding_conf(&sb, "nobind", port, false);
    let out = sb.run(&conf, &["start"]);
    assert_line(
        &out,
        1,
        &format!(
            "failed started - main-function-error (pid-file = {})",
            sb.pid_file("nobind.pid").display()
        ),
    );
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );

    let conf = sb.conf(
        "nocaps.conf",
        "(:pid-file \"nocaps.pid\" :user \"dztest\" :listen-privileged-ports nil)",
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    assert_eq!(proc_status(pid, "CapEff"), "0000000000000000");
    assert_eq!(proc_status(pid, "CapPrm"), "0000000000000000");
    assert_eq!(proc_status(pid, "CapAmb"), "0000000000000000");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// A caller that is not root cannot ask for another user (exit 4); an
/// unknown user is a conf error (exit 6); nothing is started.
#[test]
fn user_switch_errors() {
    needs_root();
    let user = test_user();
    let sb = open_sandbox();
    let pids = user_dir(&sb, &user);
    let conf = sb.conf("root.conf", "(:pid-file \"root.pid\" :user \"root\")");
    let out = sb
        .command_as(&conf, &["start"], &user)
        .env("DAEMONIZATION_PID_DIR", &pids)
        .env("LOGGING_CONF", logging_conf(&pids))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "ERROR: Denied changing user when current user is not administrator. Current user: dztest. New user: root\n"
    );
    assert!(!pids.join("root.pid").exists());

    // :group without :user, as root: the original's error.
    let conf = sb.conf("group.conf", "(:pid-file \"g.pid\" :group \"dztestextra\")");
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        stderr(&out),
        "ERROR: Can't change the group, but not modify user. Current group: root. New group: dztestextra\n"
    );
    assert!(!sb.pid_file("g.pid").exists());

    let conf = sb.conf(
        "nobody.conf",
        "(:pid-file \"x.pid\" :user \"no-such-user-dz\")",
    );
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        stderr(&out),
        "ERROR: unknown user \"no-such-user-dz\" (the :user of the conf): \
         create it (useradd --system no-such-user-dz) or correct :user\n"
    );
    assert!(!sb.pid_file("x.pid").exists());
}

/// As root, a conf file or a parent writable by others is refused.
#[test]
fn unsafe_confs_are_refused() {
    needs_root();
    let sb = open_sandbox();
    let marker = sb.path("ran");
    let conf = sb.conf(
        "w.conf",
        &format!(
            "(:pid-file \"w.pid\" :main-function #.(lambda () (open {} :direction :output)))",
            lisp_string(marker.to_str().unwrap())
        ),
    );
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o666)).unwrap();
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        stderr(&out),
        format!(
            "ERROR: refusing the conf file {0}: writable by others (mode 0666), and its code would run as root; chown root:root {0}; chmod go-w {0}\n",
            conf.display()
        )
    );
    assert!(
        !marker.exists() && !sb.pid_file("w.pid").exists(),
        "nothing started"
    );

    let parent = sb.conf("parent.conf", "(:name \"p\")");
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o664)).unwrap();
    let child = sb.conf(
        "child.conf",
        "(:pid-file \"c.pid\" :parent-conf-file \"parent.conf\")",
    );
    let out = sb.run(&child, &["start"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        stderr(&out),
        format!(
            "ERROR: {}:1:38: refusing the conf file {1}: writable by its group (mode 0664), and its code would run as root; chown root:root {1}; chmod go-w {1}\n  |\n1 | (:pid-file \"c.pid\" :parent-conf-file \"parent.conf\")\n  |                                      ^^^^^^^^^^^^^\n",
            child.display(),
            parent.display()
        )
    );
}

/// :output gets the daemon's prints and the backtrace of an error after start.
#[test]
fn output_is_captured() {
    needs_root();
    let user = test_user();
    let sb = open_sandbox();
    let dir = user_dir(&sb, &user);
    let log = dir.join("out.log");
    let go = sb.path("go");
    let conf = sb.conf(
        "o.conf",
        &format!(
            "(:pid-file \"o.pid\" :user \"dztest\" :output {}\n\
             :main-function #.(lambda () (format t \"hello from the daemon~%\") (finish-output)\n\
               (sb-thread:make-thread (lambda () (loop until (probe-file {}) do (sleep 0.02))\n\
                 (error \"boom after start\")) :name \"late\")))",
            lisp_string(log.to_str().unwrap()),
            lisp_string(go.to_str().unwrap())
        ),
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    fs::write(&go, "").unwrap();
    assert!(
        wait_until(30, || !alive(pid)),
        "the late error ends the daemon"
    );
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with("hello from the daemon\nUnhandled error in daemon: boom after start\n"),
        "{text}"
    );
    assert!(text.contains("(ERROR \"boom after start\")"), "{text}");
    let meta = fs::metadata(&log).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (user.uid.as_raw(), 0o640)
    );
    assert_eq!(
        sb.run(&conf, &["status"]).status.code(),
        Some(1),
        "stale pid file"
    );
    assert_eq!(sb.run(&conf, &["zap"]).status.code(), Some(0));
}
