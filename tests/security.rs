//! Root is the threat model: every rule of the README's Security section,
//! as root (CI runs as root), with the unprivileged test user `dztest` as
//! the attacker. The attacks are real: files and links the attacker made,
//! locks the attacker holds, processes the attacker runs, swaps done while
//! root's command runs.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;
use nix::libc;

/// The attacker.
fn attacker() -> nix::unistd::User {
    assert!(
        root(),
        "the security tests attack root's commands: run them as root (CI does)"
    );
    test_user()
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, user: &nix::unistd::User) {
    std::os::unix::fs::lchown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw())).unwrap();
}

/// A directory of the attacker's in the sandbox.
fn attacker_dir(sb: &Sandbox, name: &str) -> PathBuf {
    let dir = sb.path(name);
    fs::create_dir_all(&dir).unwrap();
    chown(&dir, &attacker());
    dir
}

/// A command run as the attacker.
fn as_attacker(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let user = attacker();
    let mut command = Command::new(program);
    command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    command
}

/// Runs `command`, failing the test if it has not ended within `secs`.
fn bounded(mut command: Command, secs: u64) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} hung for {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// A process of the attacker's that holds a lock on `file` (POSIX or OFD
/// read lock, and an flock) until killed.
fn lock_holder(sb: &Sandbox, file: &Path, ofd: bool) -> Child {
    let path = CString::new(file.as_os_str().as_bytes()).unwrap();
    let mut command = as_attacker("sleep");
    command.arg("600");
    // SAFETY: the closure only makes async-signal-safe system calls.
    unsafe {
        command.pre_exec(move || {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let lock = libc::flock {
                l_type: libc::F_RDLCK as libc::c_short,
                l_whence: libc::SEEK_SET as libc::c_short,
                l_start: 0,
                l_len: 0,
                l_pid: 0,
            };
            let op = if ofd {
                libc::F_OFD_SETLK
            } else {
                libc::F_SETLK
            };
            if libc::fcntl(fd, op, &lock) < 0 || libc::flock(fd, libc::LOCK_SH) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().unwrap();
    sb.track(child.id() as i32);
    // The lock is taken before exec: once sleep runs, it is held.
    assert!(wait_until(10, || fs::read_link(format!(
        "/proc/{}/exe",
        child.id()
    ))
    .is_ok_and(|exe| exe.ends_with("sleep"))));
    child
}

fn lisp_marker(sb: &Sandbox, name: &str) -> (PathBuf, String) {
    let marker = sb.path(name);
    let code = format!(
        "#.(lambda () (with-open-file (s {} :direction :output :if-exists :supersede) (print 1 s)))",
        lisp_string(marker.to_str().unwrap())
    );
    (marker, code)
}

#[track_caller]
fn assert_refused(out: &Output, code: i32, stderr_text: &str) {
    assert_eq!(
        (out.status.code(), stderr(out).as_str()),
        (Some(code), stderr_text),
        "stdout: {}",
        stdout(out)
    );
}

/// Asserts the exit code of a refusal, and that its stderr says `part`.
#[track_caller]
fn assert_refusal_says(out: &Output, code: i32, part: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    assert!(stderr(out).contains(part), "{}", stderr(out));
}

// 1. Conf files.

/// A conf owned by the daemon's own `:user` would give that user root at
/// the next start (`:before-parent-exit-fn` runs as root): refused.
#[test]
fn a_conf_owned_by_the_user_is_refused() {
    let user = attacker();
    let sb = open_sandbox();
    let (marker, code) = lisp_marker(&sb, "ran-as-root");
    let conf = sb.conf(
        "u.conf",
        &format!(
            "(:pid-file \"u.pid\" :user \"dztest\" :main-function #.(lambda () t) :before-parent-exit-fn {code})"
        ),
    );
    chown(&conf, &user);
    let out = sb.run(&conf, &["start"]);
    let c = conf.display();
    assert_refused(
        &out,
        6,
        &format!(
            "ERROR: refusing the conf file {c}: owned by dztest, not root, and its code would run as root; chown root:root {c}; chmod go-w {c}\n"
        ),
    );
    assert!(!marker.exists() && !sb.pid_file("u.pid").exists());
}

/// A root-owned conf in a directory the attacker can write is refused,
/// also while the attacker swaps files in it during root's commands.
#[test]
fn a_conf_in_a_users_directory_is_refused_even_while_swapped() {
    let sb = open_sandbox();
    let dir = attacker_dir(&sb, "confs");
    let (marker, code) = lisp_marker(&sb, "evil-ran");
    let good = dir.join("good.conf");
    fs::write(
        &good,
        "(:pid-file \"g.pid\" :main-function #.(lambda () t))",
    )
    .unwrap();
    let evil = dir.join("evil.conf");
    fs::write(
        &evil,
        format!("(:pid-file \"g.pid\" :main-function {code})"),
    )
    .unwrap();
    let conf = dir.join("c.conf");
    fs::copy(&good, &conf).unwrap();
    chown(&evil, &attacker());
    // The attacker swaps the two as fast as it can.
    let script = format!(
        "while true; do cp {e} {d}/t && mv {d}/t {c}; cp {g} {d}/t && mv {d}/t {c}; done",
        e = evil.display(),
        g = good.display(),
        c = conf.display(),
        d = dir.display()
    );
    let mut swapper = as_attacker("sh")
        .args(["-c", &script])
        .process_group(0)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    sb.track(swapper.id() as i32);
    for _ in 0..20 {
        let out = sb.run(&conf, &["start"]);
        assert_refusal_says(
            &out,
            6,
            &format!(
                "the directory {} on its path is owned by dztest, not root",
                dir.display()
            ),
        );
    }
    let group = nix::unistd::Pid::from_raw(swapper.id() as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = swapper.wait();
    assert!(!marker.exists() && !sb.pid_file("g.pid").exists());
}

/// A conf reached through a symbolic link in root's directories runs.
#[test]
fn a_symlinked_conf_in_roots_directories_runs() {
    attacker();
    let sb = open_sandbox();
    fs::create_dir(sb.path("real")).unwrap();
    let real = sb.path("real/c.conf");
    fs::write(&real, "(:pid-file \"l.pid\" :name \"linked\")").unwrap();
    let link = sb.path("link.conf");
    symlink("real/c.conf", &link).unwrap();
    let out = sb.run(&link, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(":name \"linked\""));
}

/// FIFOs and devices are refused at once, for root and for anyone, and a
/// conf larger than 1 MiB is refused.
#[test]
fn fifos_devices_and_huge_confs_are_refused_at_once() {
    let user = attacker();
    let sb = open_sandbox();
    let fifo = sb.path("parent.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    for (name, parent) in [
        ("f.conf", fifo.as_path()),
        ("z.conf", Path::new("/dev/zero")),
    ] {
        let conf = sb.conf(
            name,
            &format!(
                "(:pid-file \"x.pid\" :parent-conf-file {})",
                lisp_string(parent.to_str().unwrap())
            ),
        );
        let out = bounded(sb.command(&conf, &["check"]), 10);
        assert_eq!(out.status.code(), Some(6));
        let kind = if parent == fifo {
            "a FIFO"
        } else {
            "a character device"
        };
        assert!(
            stderr(&out).contains(&format!(
                ": refusing the conf file {}: it is {kind}; name a regular file",
                parent.display()
            )),
            "{}",
            stderr(&out)
        );
    }
    // Not root: the caller's own FIFO is refused too, at once.
    let dir = attacker_dir(&sb, "mine");
    let own = dir.join("own.fifo");
    nix::unistd::mkfifo(&own, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    chown(&own, &user);
    let mut command = as_attacker(bin_for_anyone());
    command
        .arg(&own)
        .arg("check")
        .env("LOGGING_CONF", logging_conf(&dir))
        .env("DAEMONIZATION_PID_DIR", &dir);
    chown(&logging_conf(&dir), &user);
    let out = bounded(command, 10);
    assert_refused(
        &out,
        6,
        &format!(
            "ERROR: refusing the conf file {}: it is a FIFO; name a regular file\n",
            own.display()
        ),
    );
    let big = sb.conf(
        "big.conf",
        &format!("(:pid-file \"b.pid\" :name \"{}\")", "x".repeat(1 << 20)),
    );
    let out = sb.run(&big, &["check"]);
    assert_refused(
        &out,
        6,
        &format!(
            "ERROR: refusing the conf file {}: it is larger than 1 MiB; a conf file is a property list: keep it small\n",
            big.display()
        ),
    );
}

/// The logging conf and the default conf are confs too.
#[test]
fn logging_and_default_confs_of_a_user_are_refused() {
    let user = attacker();
    let sb = open_sandbox();
    let conf = sb.conf("c.conf", "(:pid-file \"c.pid\")");
    let logging = sb.path("user-logging.conf");
    fs::write(&logging, "(:admin-info-destination \"/etc/owned\")").unwrap();
    chown(&logging, &user);
    let out = sb.run_with(
        &conf,
        &["status"],
        &[("LOGGING_CONF", logging.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).starts_with(&format!(
        "ERROR: refusing the conf file {}: owned by dztest, not root",
        logging.display()
    )));
    let default = sb.path("user-default.conf");
    fs::write(&default, "(:pid-file \"d.pid\")").unwrap();
    chown(&default, &user);
    let out = sb.run_with(
        &conf,
        &["status"],
        &[("DAEMONIZATION_DEFAULT_CONF", default.to_str().unwrap())],
    );
    assert_refusal_says(
        &out,
        6,
        &format!(
            "refusing the conf file {}: owned by dztest, not root",
            default.display()
        ),
    );
}

/// As root, the Lisp program (LISP_RUNNER or on PATH) must be root's.
#[test]
fn a_lisp_program_of_the_user_is_not_run() {
    let user = attacker();
    let sb = open_sandbox();
    let dir = attacker_dir(&sb, "bin");
    let marker = sb.path("runner-ran");
    let runner = dir.join("sbcl");
    fs::write(
        &runner,
        format!(
            "#!/bin/sh\ntouch {}\nexec /usr/bin/sbcl \"$@\"\n",
            marker.display()
        ),
    )
    .unwrap();
    chmod(&runner, 0o755);
    chown(&runner, &user);
    let conf = sb.conf(
        "r.conf",
        "(:pid-file \"r.pid\" :main-function #.(lambda () t))",
    );
    let out = sb.run_with(
        &conf,
        &["start"],
        &[("LISP_RUNNER", runner.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!(
            "ERROR: refusing the Lisp program {}: the directory {} on its path is owned by dztest, not root",
            runner.display(),
            dir.display()
        )),
        "{}",
        stderr(&out)
    );
    let mut command = sb.command(&conf, &["start"]);
    command.env("PATH", format!("{}:/usr/bin:/bin", dir.display()));
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!marker.exists() && !sb.pid_file("r.pid").exists());
}

// 2. Pid files and the pid directory.

/// A pid directory handed to the daemon's user (restas-daemon's habit) or
/// writable by others is refused; nothing is written in it.
#[test]
fn a_pid_directory_others_can_write_is_refused() {
    let sb = open_sandbox();
    let dir = attacker_dir(&sb, "run-site");
    let conf = sb.conf(
        "p.conf",
        &format!(
            "(:pid-file \"site.pid\" :pid-file-dir {} :user \"dztest\" :main-function #.(lambda () t))",
            lisp_string(dir.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    let pid_file = dir.join("site.pid");
    assert_refused(
        &out,
        1,
        &format!(
            "ERROR: refusing the pid file directory {d}: it is owned by dztest, not root; chown root:root {d}; chmod go-w {d} (or use a directory only root can change)\n",
            d = dir.display()
        ),
    );
    assert_eq!(
        stdout(&out),
        format!(
            "failed started - internal-error (pid-file = {})\n",
            pid_file.display()
        )
    );
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    let shared = sb.path("shared");
    fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let conf = sb.conf(
        "s.conf",
        &format!(
            "(:pid-file {})",
            lisp_string(shared.join("s.pid").to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["status"]);
    assert_refusal_says(&out, 4, "is writable by others (mode 0777)");
}

/// Hard links, FIFOs and other owners' pid files are refused: never opened
/// for writing, never read in a way that blocks, never truncated.
#[test]
fn pid_files_that_are_not_roots_own_are_refused() {
    let user = attacker();
    let sb = open_sandbox();
    let precious = sb.path("precious");
    fs::write(&precious, "root's data\n").unwrap();
    let conf = sb.conf(
        "h.conf",
        "(:pid-file \"h.pid\" :main-function #.(lambda () t))",
    );
    fs::hard_link(&precious, sb.pid_file("h.pid")).unwrap();
    for command in ["start", "stop", "status", "restart", "zap"] {
        let out = sb.run(&conf, &[command]);
        assert!(
            stderr(&out).contains("it has 2 hard links, so it may be another file too"),
            "{command}: {}",
            stderr(&out)
        );
    }
    assert_eq!(fs::read_to_string(&precious).unwrap(), "root's data\n");

    let fifo_conf = sb.conf("f.conf", "(:pid-file \"f.pid\")");
    nix::unistd::mkfifo(
        &sb.pid_file("f.pid"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let out = bounded(sb.command(&fifo_conf, &["status"]), 10);
    assert_refusal_says(&out, 4, "f.pid: it is a FIFO;");

    // A shared sticky directory, as /tmp: the attacker's pid file there is
    // refused, and root's own work.
    let shared = sb.path("shared");
    fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    let planted = shared.join("x.pid");
    let out = as_attacker("sh")
        .args(["-c", &format!("echo 1 > {}", planted.display())])
        .output()
        .unwrap();
    assert!(out.status.success());
    let conf = sb.conf(
        "x.conf",
        &format!(
            "(:pid-file \"x.pid\" :pid-file-dir {} :main-function #.(lambda () t))",
            lisp_string(shared.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    assert_refusal_says(&out, 1, "x.pid: owned by dztest, not root;");
    assert_eq!(fs::read_to_string(&planted).unwrap(), "1\n");
    assert_eq!(fs::metadata(&planted).unwrap().uid(), user.uid.as_raw());
    fs::remove_file(&planted).unwrap();
    let pid = started_pid(&sb.run(&conf, &["start"]));
    assert_eq!(fs::metadata(&planted).unwrap().uid(), 0);
    assert_eq!(fs::read_to_string(&planted).unwrap(), format!("{pid}\n"));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert_eq!(
        fs::read_dir(&shared).unwrap().count(),
        0,
        "nothing left behind"
    );
}

/// What the daemon's user makes in its control directory (in root's pid
/// directory) goes with the daemon, removed as that user: a stop leaves
/// nothing, links in it are not followed, and a directory left by a
/// killed daemon does not keep another user's daemon of that pid file out.
#[test]
fn the_users_control_directory_goes_with_its_daemon() {
    let user = attacker();
    let sb = open_sandbox();
    let control = sb.pid_file("c.pid.control");
    let precious = sb.path("precious");
    fs::create_dir(&precious).unwrap();
    fs::write(precious.join("data"), "root's\n").unwrap();
    let conf = |user: &str| {
        format!(
            "(:pid-file \"c.pid\" {user} :main-function #.(lambda ()\n\
               (ensure-directories-exist {keep})\n\
               (with-open-file (s {file} :direction :output) (write-line \"mine\" s))\n\
               (sb-posix:symlink {precious} {link})))",
            keep = lisp_string(&format!("{}/keep/deeper/", control.display())),
            file = lisp_string(&format!("{}/keep/deeper/file", control.display())),
            link = lisp_string(&format!("{}/keep/precious", control.display())),
            precious = lisp_string(precious.to_str().unwrap()),
        )
    };
    let users = sb.conf("c.conf", &conf(":user \"dztest\""));
    let pid = started_pid(&sb.run(&users, &["start"]));
    sb.track(pid);
    assert_eq!(
        fs::metadata(control.join("keep")).unwrap().uid(),
        user.uid.as_raw()
    );
    let out = sb.run(&users, &["stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!control.exists(), "the control directory is gone");
    assert_eq!(
        fs::read_to_string(precious.join("data")).unwrap(),
        "root's\n"
    );

    // Killed, it leaves its directory; root's daemon of the pid file
    // starts anyway, in a directory of its own.
    let pid = started_pid(&sb.run(&users, &["start"]));
    sb.track(pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(30, || !alive(pid)));
    assert!(control.join("keep/deeper/file").exists());
    let roots = sb.conf("r.conf", &conf(""));
    let out = sb.run(&roots, &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    sb.track(started_pid(&out));
    assert_eq!(fs::metadata(&control).unwrap().uid(), 0);
    assert_eq!(
        fs::read_to_string(control.join("keep/deeper/file")).unwrap(),
        "mine\n"
    );
    assert_eq!(sb.run(&roots, &["stop"]).status.code(), Some(0));
    assert!(!control.exists());
    assert_eq!(
        fs::read_to_string(precious.join("data")).unwrap(),
        "root's\n"
    );
}

/// Whatever its Lisps make their errors say, a supervisor's state file
/// stays whole: `status` shows it, `eval` reaches the Lisp, and a
/// `restart` whose new Lisp fails says so and leaves the old one serving,
/// each time.
#[test]
fn a_lisp_cannot_make_its_state_unreadable() {
    attacker();
    let sb = open_sandbox();
    let (generation, go) = (sb.path("generation"), sb.path("go"));
    fs::write(&generation, "0").unwrap();
    chown(&generation, &attacker());
    // Characters shown as 9-byte escapes, and 4-byte ones.
    let long = "(concatenate 'string (make-string 300 :initial-element (code-char #xE007F)) \
                (make-string 300 :initial-element (code-char #x1F600)))";
    let conf = sb.conf(
        "s.conf",
        &format!(
            "(:name \"s\" :pid-file \"s.pid\" :user \"dztest\" :restart :always :restart-delay 0\n \
             :listen ((:name \"http\" :port {port} :address \"127.0.0.1\"))\n \
             :main-function #.(lambda ()\n\
               (let ((n (with-open-file (s {generation}) (read s))))\n\
                 (with-open-file (s {generation} :direction :output :if-exists :supersede) (print (1+ n) s))\n\
                 (case n\n\
                   (0 (sb-thread:make-thread (lambda ()\n\
                        (loop until (probe-file {go}) do (sleep 0.01))\n\
                        (error \"~a\" (make-string 250 :initial-element (code-char #x1F600))))))\n\
                   (1 t)\n\
                   (t (error \"~a\" {long}))))))",
            port = free_port(),
            generation = lisp_string(generation.to_str().unwrap()),
            go = lisp_string(go.to_str().unwrap()),
        ),
    );
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    sb.track(started_pid(&out));
    fs::write(&go, "").unwrap();
    let status = || stdout(&sb.run(&conf, &["status"]));
    assert!(
        wait_until(30, || status().starts_with("running ")
            && status().contains("restarts = 1")),
        "{}",
        status()
    );
    let serving = lisp_of(&status());
    sb.track(serving);
    for round in 0..2 {
        let out = sb.run(&conf, &["restart"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "round {round}: {}",
            stdout(&out)
        );
        assert!(
            stderr(&out).starts_with("ERROR: the new Lisp (pid ")
                && stderr(&out)
                    .ends_with(&format!("; the old Lisp (pid {serving}) keeps serving\n")),
            "round {round}: {}",
            stderr(&out)
        );
        let state = fs::read(sb.pid_file("s.pid.state")).unwrap();
        assert!(state.len() <= 4096, "{} bytes", state.len());
        assert_eq!(lisp_of(&status()), serving, "round {round}");
        let out = sb.run(&conf, &["eval", "(+ 1 2)"]);
        assert_eq!(stdout(&out), "3\n", "round {round}: {}", stderr(&out));
    }
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert!(!alive(serving));
}

/// The Lisp a `status` line of a supervisor names.
fn lisp_of(status: &str) -> i32 {
    status
        .split("lisp-pid = ")
        .nth(1)
        .and_then(|rest| rest.split([' ', ',', ')']).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no Lisp in {status}"))
}

// 3. The lock that says "the daemon runs".

/// The pid file stays readable by all, but locks the attacker takes on it
/// (POSIX, OFD, flock) neither fake nor hide a daemon, nor block root.
#[test]
fn locks_on_the_pid_file_neither_fake_nor_hide_nor_block() {
    attacker();
    let sb = open_sandbox();
    let conf = sb.conf(
        "l.conf",
        "(:pid-file \"l.pid\" :user \"dztest\" :main-function #.(lambda () t))",
    );
    let pid_file = sb.pid_file("l.pid");
    let pid = started_pid(&sb.run(&conf, &["start"]));
    assert_eq!(fs::metadata(&pid_file).unwrap().mode() & 0o777, 0o644);
    let lock_file = sb.path("l.pid.lock");
    assert_eq!(fs::metadata(&lock_file).unwrap().mode() & 0o777, 0o600);
    assert!(holds_lock(pid, &lock_file), "the daemon holds its lock");
    let mut posix = lock_holder(&sb, &pid_file, false);
    let mut ofd = lock_holder(&sb, &pid_file, true);
    let mut on_dir = lock_holder(&sb, sb.dir.path(), false);
    let p = pid_file.display();
    let status = bounded(sb.command(&conf, &["status"]), 15);
    assert_line(&status, 0, &format!("running (pid = {pid} pid-file = {p})"));
    let stop = bounded(sb.command(&conf, &["stop"]), 30);
    assert_line(
        &stop,
        0,
        &format!("success stopped (pid = {pid} pid-file = {p})"),
    );
    for holder in [&mut posix, &mut ofd, &mut on_dir] {
        assert!(
            holder.try_wait().unwrap().is_none(),
            "the attacker was not signalled"
        );
    }
    assert!(!alive(pid));
    // A stale pid file the attacker locks does not stop a new start.
    fs::write(&pid_file, "999999\n").unwrap();
    let mut stale = lock_holder(&sb, &pid_file, false);
    let out = bounded(sb.command(&conf, &["start"]), 30);
    let new = started_pid(&out);
    assert_ne!(new, stale.id() as i32);
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    for holder in [&mut posix, &mut ofd, &mut on_dir, &mut stale] {
        let _ = holder.kill();
        let _ = holder.wait();
    }
}

// 4. Signals go only to the daemon this tool started.

/// A Lisp started by the test, as `user` (root if None).
fn other_lisp(sb: &Sandbox, user: Option<&nix::unistd::User>) -> Child {
    let mut command = Command::new("sbcl");
    command.args(["--noinform", "--non-interactive", "--eval", "(sleep 600)"]);
    if let Some(user) = user {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let child = command.stdout(Stdio::null()).spawn().unwrap();
    sb.track(child.id() as i32);
    child
}

/// Lock-less pid files (forged, or leftovers) name only a Lisp of the
/// conf's user started just before the file was written.
#[test]
fn lockless_pid_files_name_only_a_lisp_of_the_user_started_just_before() {
    let user = attacker();
    let sb = open_sandbox();
    let conf = sb.conf("v.conf", "(:pid-file \"v.pid\")");
    let pid_file = sb.pid_file("v.pid");
    let p = pid_file.display();
    let write_pid = |pid: u32, shift: Option<i64>| {
        fs::write(&pid_file, format!("{pid}\n")).unwrap();
        if let Some(secs) = shift {
            let file = fs::File::options().write(true).open(&pid_file).unwrap();
            let at = std::time::SystemTime::now()
                .checked_add(Duration::from_secs(secs as u64))
                .unwrap();
            file.set_modified(at).unwrap();
        }
    };
    // Not a Lisp: a root process.
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    sb.track(sleeper.id() as i32);
    write_pid(sleeper.id(), None);
    let out = sb.run(&conf, &["stop", "--retry", "KILL/5"]);
    assert_line(
        &out,
        0,
        &format!(
            "failed stopped - not-running (pid = {} pid-file = {p})",
            sleeper.id()
        ),
    );
    assert!(sleeper.try_wait().unwrap().is_none());
    // A root Lisp, but the file was written long after it started.
    let mut lisp = other_lisp(&sb, None);
    write_pid(lisp.id(), Some(60));
    let out = sb.run(&conf, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // A Lisp of another user than the conf's (root, as it has no :user).
    let mut theirs = other_lisp(&sb, Some(&user));
    write_pid(theirs.id(), None);
    let out = sb.run(&conf, &["kill"]);
    assert_line(
        &out,
        0,
        &format!(
            "failed killed - not-running (pid = {} pid-file = {p})",
            theirs.id()
        ),
    );
    assert!(lisp.try_wait().unwrap().is_none() && theirs.try_wait().unwrap().is_none());
    // The original tool's own pid file: root's Lisp, written right after.
    write_pid(lisp.id(), None);
    let out = sb.run(&conf, &["stop", "--retry", "KILL/5"]);
    assert_line(
        &out,
        0,
        &format!("success stopped (pid = {} pid-file = {p})", lisp.id()),
    );
    assert!(lisp.wait().is_ok());
    for child in [&mut sleeper, &mut theirs] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A supervisor's state file naming another process: that process is not
/// signalled, only the supervisor's own child would be.
#[test]
fn a_state_file_cannot_aim_the_stop() {
    attacker();
    let sb = open_sandbox();
    let conf = sb.conf(
        "s.conf",
        "(:pid-file \"s.pid\" :restart :on-failure :main-function #.(lambda () t))",
    );
    let supervisor = started_pid(&sb.run(&conf, &["start"]));
    let status = stdout(&sb.run(&conf, &["status"]));
    let lisp: i32 = status
        .split("lisp-pid = ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{status}"));
    let mut victim = Command::new("sleep").arg("600").spawn().unwrap();
    sb.track(victim.id() as i32);
    fs::write(
        sb.path("s.pid.state"),
        format!(
            "supervisor {supervisor}\nrestarts 0\nlisp {}\n",
            victim.id()
        ),
    )
    .unwrap();
    assert_eq!(sb.run(&conf, &["kill"]).status.code(), Some(0));
    assert!(victim.try_wait().unwrap().is_none(), "the victim lives");
    assert!(
        wait_until(10, || !alive(lisp)),
        "the supervisor's Lisp died with it"
    );
    let _ = victim.kill();
    let _ = victim.wait();
}

// 5. Paths of the daemon's user, with the user's power.

/// `:output` through a link the user made, a directory the user swapped
/// for a link, or a hard link: refused; root's files are untouched.
#[test]
fn output_is_never_opened_through_the_users_links() {
    let user = attacker();
    let sb = open_sandbox();
    let dir = attacker_dir(&sb, "home");
    let precious = sb.path("precious");
    fs::write(&precious, "root's data\n").unwrap();
    let roots = sb.path("roots");
    fs::create_dir(&roots).unwrap();
    let link = dir.join("out.log");
    symlink(&precious, &link).unwrap();
    chown(&link, &user);
    let swapped = dir.join("logs");
    symlink(&roots, &swapped).unwrap();
    chown(&swapped, &user);
    let hard = sb.path("hard.log");
    fs::hard_link(&precious, &hard).unwrap();
    for (output, reason) in [
        (
            link.clone(),
            "out.log: it is a symbolic link, which is never followed here;",
        ),
        (
            swapped.join("out.log"),
            "is a symbolic link that dztest, who can change",
        ),
        (hard.clone(), "it has 2 hard links"),
    ] {
        for supervised in ["", ":restart :on-failure"] {
            let conf = sb.conf(
                "o.conf",
                &format!(
                    "(:pid-file \"o.pid\" :user \"dztest\" :output {} {supervised}\n\
                     :main-function #.(lambda () (print \"x\")))",
                    lisp_string(output.to_str().unwrap())
                ),
            );
            let out = sb.run(&conf, &["start"]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{output:?} {supervised}: {err}");
            assert!(err.contains(reason), "{output:?} {supervised}: {err}");
            assert!(!sb.pid_file("o.pid").exists());
        }
    }
    assert_eq!(fs::read_to_string(&precious).unwrap(), "root's data\n");
    assert_eq!(fs::read_dir(&roots).unwrap().count(), 0);
}

/// Rotation removes and renames only entries of the `:output` directory
/// reached at start, never through a link the user planted.
#[test]
fn rotation_never_follows_the_users_links() {
    let user = attacker();
    let sb = open_sandbox();
    let dir = attacker_dir(&sb, "logs");
    let precious = sb.path("precious");
    fs::write(&precious, "root's data\n").unwrap();
    let out_log = dir.join("out.log");
    for n in 1..=2 {
        let planted = dir.join(format!("out.log.{n}"));
        symlink(&precious, &planted).unwrap();
        chown(&planted, &user);
    }
    let conf = sb.conf(
        "r.conf",
        &format!(
            "(:pid-file \"r.pid\" :user \"dztest\" :output {} :output-max-size 200 :output-keep 2\n\
             :main-function #.(lambda () (dotimes (i 40) (format t \"line ~d of the daemon's output~%\" i)) (finish-output)))",
            lisp_string(out_log.to_str().unwrap())
        ),
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    assert!(wait_until(10, || fs::read_to_string(&out_log)
        .is_ok_and(|t| t.contains("line 39"))));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert!(!alive(pid));
    assert_eq!(fs::read_to_string(&precious).unwrap(), "root's data\n");
    for n in 1..=2 {
        let rotated = dir.join(format!("out.log.{n}"));
        let meta = fs::symlink_metadata(&rotated).unwrap();
        assert!(meta.is_file(), "out.log.{n} is a rotated file now");
        assert_eq!(meta.uid(), user.uid.as_raw());
    }
}

/// `:fasl-dir` is created and given to the user where root may create it,
/// but never chowned through a link the user made.
#[test]
fn fasl_dir_is_never_chowned_through_a_link() {
    let user = attacker();
    let sb = open_sandbox();
    let dir = attacker_dir(&sb, "cache");
    let roots = sb.path("roots");
    fs::create_dir(&roots).unwrap();
    let link = dir.join("fasl");
    symlink(&roots, &link).unwrap();
    chown(&link, &user);
    let conf = sb.conf(
        "f.conf",
        &format!(
            "(:pid-file \"f.pid\" :user \"dztest\" :fasl-dir {} :main-function #.(lambda () t))",
            lisp_string(link.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    assert_refusal_says(&out, 1, "is a symbolic link that dztest, who can change");
    assert_eq!(fs::metadata(&roots).unwrap().uid(), 0);
    // restas-daemon's default, /var/cache/NAME/fasl/: made by root, given to the user.
    let fasl = sb.path("var/cache/site/fasl");
    let conf = sb.conf(
        "g.conf",
        &format!(
            "(:pid-file \"g.pid\" :user \"dztest\" :fasl-dir {} :main-function #.(lambda () t))",
            lisp_string(fasl.to_str().unwrap())
        ),
    );
    started_pid(&sb.run(&conf, &["start"]));
    assert_eq!(fs::metadata(&fasl).unwrap().uid(), user.uid.as_raw());
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

// 7. Non-root callers: the tool's own pid directory is theirs alone.

/// The attacker's run of the tool with `XDG_RUNTIME_DIR` in `dir`.
fn as_user_tool(dir: &Path, conf: &Path, command: &str) -> Output {
    let mut tool = as_attacker(bin_for_anyone());
    tool.arg(conf)
        .arg(command)
        .env_remove("DAEMONIZATION_PID_DIR")
        .env("XDG_RUNTIME_DIR", dir)
        .env("LOGGING_CONF", logging_conf(dir))
        .env("HOME", dir);
    tool.output().unwrap()
}

#[test]
fn a_users_own_pid_directory_is_private_and_theirs() {
    let user = attacker();
    let sb = open_sandbox();
    let runtime = attacker_dir(&sb, "runtime");
    chown(&logging_conf(&runtime), &user);
    let conf = runtime.join("p.conf");
    fs::write(
        &conf,
        "(:pid-file \"p.pid\" :main-function #.(lambda () t))",
    )
    .unwrap();
    chown(&conf, &user);
    let own = runtime.join("daemonization");
    fs::create_dir(&own).unwrap();
    chmod(&own, 0o755);
    chown(&own, &user);
    let out = as_user_tool(&runtime, &conf, "start");
    let pid = started_pid(&out);
    sb.track(pid);
    assert_eq!(fs::metadata(&own).unwrap().mode() & 0o7777, 0o700);
    assert!(own.join("p.pid").exists());
    assert_eq!(as_user_tool(&runtime, &conf, "stop").status.code(), Some(0));
    // Made first by someone else (here root): refused, nothing written.
    fs::remove_dir_all(&own).unwrap();
    fs::create_dir(&own).unwrap();
    chmod(&own, 0o777);
    let out = as_user_tool(&runtime, &conf, "start");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!(
            "refusing the pid file directory {}: it is owned by root, and it must be dztest's alone",
            own.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_dir(&own).unwrap().count(), 0);
}

// 8. The daemon's environment.

/// Root's environment does not reach a daemon of another user; the conf's
/// `:environment` does, in every mode.
#[test]
fn roots_environment_stays_roots() {
    let user = attacker();
    let sb = open_sandbox();
    let conf = sb.conf(
        "e.conf",
        "(:pid-file \"e.pid\" :user \"dztest\" :environment (\"APP_MODE=production\" \"WORKERS=4\") :main-function #.(lambda () t))",
    );
    let out = sb.run_with(
        &conf,
        &["start"],
        &[("ROOT_SECRET", "hunter2"), ("LANG", "C.UTF-8")],
    );
    let pid = started_pid(&out);
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut vars: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    vars.sort();
    let mut expected = vec![
        "APP_MODE=production".to_string(),
        format!("HOME={}", user.dir.display()),
        "LANG=C.UTF-8".into(),
        "LOGNAME=dztest".into(),
        "PATH=/usr/local/bin:/usr/bin:/bin".into(),
        format!("SHELL={}", user.shell.display()),
        "USER=dztest".into(),
        "WORKERS=4".into(),
    ];
    expected.sort();
    let kept: Vec<String> = vars
        .iter()
        .filter(|v| {
            !v.starts_with("LC_")
                && !v.starts_with("TZ=")
                && !v.starts_with("TERM=")
                && !v.starts_with("SBCL_HOME=")
        })
        .cloned()
        .collect();
    assert_eq!(kept, expected);
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    // No switch: the caller's environment, plus :environment.
    let conf = sb.conf(
        "n.conf",
        "(:pid-file \"n.pid\" :environment (\"APP_MODE=dev\") :main-function #.(lambda () t))",
    );
    let pid = started_pid(&sb.run_with(&conf, &["start"], &[("MY_VAR", "kept")]));
    let environ =
        String::from_utf8_lossy(&fs::read(format!("/proc/{pid}/environ")).unwrap()).into_owned();
    assert!(environ.split('\0').any(|v| v == "MY_VAR=kept"));
    assert!(environ.split('\0').any(|v| v == "APP_MODE=dev"));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

// Also fixed on the same pass.

/// Rule 3. `zap --force` of a daemon that runs ends it with its whole
/// tree first (its pid file would no longer name it): nothing of it is
/// left, a `setsid` child of its Lisp included.
#[test]
fn zap_force_ends_the_daemons_whole_tree() {
    attacker();
    let sb = open_sandbox();
    let home = attacker_dir(&sb, "home");
    let child_file = home.join("child.pid");
    let conf = stranger_conf(
        &sb,
        "z",
        "",
        &format!(
            "(sb-ext:run-program \"/usr/bin/setsid\" (list \"-f\" \"sh\" \"-c\" {}) :wait t) t",
            lisp_string(&format!(
                "echo $$ > {}; exec sleep 600",
                child_file.display()
            ))
        ),
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    let child = pid_written(&child_file);
    sb.track(child);
    let p = sb.pid_file("z.pid");
    let out = sb.run(&conf, &["zap", "--force"]);
    assert_line(
        &out,
        0,
        &format!("success zapped (pid-file = {})", p.display()),
    );
    assert_eq!(stderr(&out), "");
    assert!(!p.exists());
    assert!(!alive(pid), "the daemon was ended");
    assert!(
        wait_until(10, || !alive(child)),
        "its setsid child {child} was ended too"
    );
}

/// The kernel function the main thread of `pid` waits in.
fn wchan(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
}

/// A daemon survives its starter giving up before it is ready, on every
/// Lisp: its readiness report to nobody is not fatal.
#[test]
fn a_daemon_survives_a_starter_that_gave_up() {
    attacker();
    for lisp in ["sbcl", "ecl", "clisp"] {
        let sb = open_sandbox();
        let go = sb.path("go.fifo");
        nix::unistd::mkfifo(&go, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Not ready until the test writes to the FIFO.
        let conf = sb.conf(
            "g.conf",
            &format!(
                "(:pid-file \"g.pid\" :lisp :{lisp} :stop-schedule \"TERM/10/KILL/5\"\n\
                 :main-function #.(lambda () (with-open-file (s {} :direction :io :if-exists :overwrite) (read-line s nil))))",
                lisp_string(go.to_str().unwrap())
            ),
        );
        let out = sb.run(&conf, &["start", "--timeout", "0.3"]);
        assert!(
            stdout(&out).ends_with(" - still initializing\n"),
            "{lisp}: {}",
            stdout(&out)
        );
        let pid = started_pid(&out);
        fs::write(&go, "go\n").unwrap();
        // Past its report, the Lisp waits until stopped (SBCL on a
        // semaphore, the others in a timed sleep; before it, it waited on
        // the FIFO), unless the report killed it.
        let asleep = |w: &str| {
            w.contains("nanosleep") || w.contains("poll_schedule_timeout") || w.contains("futex")
        };
        assert!(
            wait_until(30, || !alive(pid) || asleep(&wchan(pid))),
            "{lisp}: {}",
            wchan(pid)
        );
        assert!(
            alive(pid),
            "{lisp} survived its report to a starter that left"
        );
        let out = sb.run(&conf, &["stop"]);
        assert_eq!(out.status.code(), Some(0), "{lisp}: {}", stdout(&out));
    }
}

/// A child of the Lisp that keeps the readiness pipe open (ECL cannot mark
/// it close-on-exec) does not hang `start` past its timeout after an error.
#[test]
fn a_failed_start_ends_even_if_a_child_keeps_the_pipe() {
    attacker();
    let sb = open_sandbox();
    let child_pid = sb.path("child.pid");
    let conf = sb.conf(
        "c.conf",
        &format!(
            "(:pid-file \"c.pid\" :lisp :ecl :start-timeout 3\n\
             :main-function #.(lambda ()\n\
               (multiple-value-bind (s code p)\n\
                   (ext:run-program \"/bin/sleep\" '(\"600\") :wait nil :input nil :output nil :error nil)\n\
                 (declare (ignore s code))\n\
                 (with-open-file (f {} :direction :output) (print (ext:external-process-pid p) f)))\n\
               (error \"boom\")))",
            lisp_string(child_pid.to_str().unwrap())
        ),
    );
    let out = bounded(sb.command(&conf, &["start"]), 30);
    if let Some(pid) = fs::read_to_string(&child_pid)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    {
        sb.track(pid);
    }
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "failed started - main-function-error (pid-file = {})\n",
            sb.pid_file("c.pid").display()
        )
    );
    assert!(stderr(&out).contains("boom"), "{}", stderr(&out));
    assert!(!sb.pid_file("c.pid").exists());
}

/// The daemon's own user holds a descriptor of the lock file: it cannot
/// write it, and the locks it adds with it (from a child that outlives the
/// daemon) neither keep a dead daemon "running" nor are ever signalled.
#[test]
fn locks_the_daemons_user_adds_are_ignored() {
    attacker();
    let sb = open_sandbox();
    let squatter_pid = attacker_dir(&sb, "home").join("squatter.pid");
    // A read lock (the descriptor is read-only) and an flock from a child
    // that keeps them.
    let perl = "open(my $f, '<&=', 5) or die $!; \
                my $lk = pack('s s x4 q q i x4', 0, 0, 0, 0, 0); fcntl($f, 6, $lk) or die $!; \
                flock($f, 1) or die $!; sleep 600";
    let conf = sb.conf(
        "q.conf",
        &format!(
            "(:pid-file \"q.pid\" :user \"dztest\"\n\
             :main-function #.(lambda ()\n\
               (require :sb-posix)\n\
               (funcall (find-symbol \"FCNTL\" \"SB-POSIX\") 5 2 0)\n\
               (let ((p (sb-ext:run-program \"/usr/bin/perl\" (list \"-e\" {}) :preserve-fds '(5) :wait nil :output nil :error nil :input nil)))\n\
                 (with-open-file (f {} :direction :output :if-exists :supersede) (print (sb-ext:process-pid p) f)))))",
            lisp_string(perl),
            lisp_string(squatter_pid.to_str().unwrap())
        ),
    );
    let daemon = started_pid(&sb.run(&conf, &["start"]));
    assert!(wait_until(10, || fs::read_to_string(&squatter_pid)
        .is_ok_and(
            |t| t.ends_with(' ') || t.trim().parse::<i32>().is_ok()
        )));
    let squatter: i32 = fs::read_to_string(&squatter_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    sb.track(squatter);
    let lock = fs::metadata(sb.path("q.pid.lock")).unwrap();
    let holds = |pid: i32| {
        fs::read_to_string("/proc/locks").unwrap().lines().any(|l| {
            l.split_whitespace().nth(4) == Some(&pid.to_string())
                && l.contains(&format!(":{} ", lock.ino()))
        })
    };
    assert!(
        wait_until(10, || holds(squatter)),
        "the child locks the file too"
    );
    let p = sb.pid_file("q.pid").display().to_string();
    assert_line(
        &sb.run(&conf, &["status"]),
        0,
        &format!("running (pid = {daemon} pid-file = {p})"),
    );
    // The daemon dies (not by the tool): its child's locks keep nothing alive.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(10, || !alive(daemon)));
    assert_line(
        &sb.run(&conf, &["status"]),
        1,
        &format!("not-running - service-unavailable (pid = {daemon} pid-file = {p})"),
    );
    assert_line(
        &sb.run(&conf, &["kill"]),
        0,
        &format!("failed killed - not-running (pid = {daemon} pid-file = {p})"),
    );
    // The child is the dead daemon's: it was left in the daemon's cgroup,
    // and `kill` ends what is left of a daemon too.
    assert!(
        wait_until(10, || !alive(squatter)),
        "the daemon's leftover child ends with it"
    );
    assert_eq!(
        fs::metadata(sb.path("q.pid.lock")).map(|m| m.len()).ok(),
        None
    );
    let again = started_pid(&sb.run(&conf, &["start"]));
    assert_ne!(again, squatter);
    let second: i32 = {
        assert!(wait_until(10, || fs::read_to_string(&squatter_pid)
            .is_ok_and(|t| t
                .trim()
                .parse::<i32>()
                .is_ok_and(|n| n != squatter))));
        fs::read_to_string(&squatter_pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    sb.track(second);
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    for pid in [squatter, second] {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The stat fields of `pid` after its command name (`fields[4]` is the
/// controlling terminal's number).
fn stat_fields(pid: i32) -> Vec<String> {
    // A process may end between the listing of /proc and this read.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A number a process of the test user wrote to `path`, once it is there.
fn pid_written(path: &Path) -> i32 {
    assert!(
        wait_until(30, || fs::read_to_string(path)
            .is_ok_and(|t| t.trim().parse::<i32>().is_ok())),
        "{} was never written",
        path.display()
    );
    fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

/// `nodaemon` with a `:user` at root's terminal: the Lisp gets a pty of its
/// own (relayed by the tool, as `su --pty` does), none of the caller's
/// descriptors beyond the standard ones, and its whole tree ends with it:
/// a thief that `setsid`s and keeps the Lisp's terminal to read root's
/// next keystrokes never had root's terminal, and is gone once the Lisp is.
#[test]
fn nodaemon_gives_another_user_a_terminal_of_its_own_and_ends_its_tree() {
    use std::io::Write as _;
    attacker();
    let sb = open_sandbox();
    let home = attacker_dir(&sb, "home");
    let lisp_file = home.join("lisp.pid");
    let thief_file = home.join("thief.pid");
    let thief = format!(
        // (An asynchronous command's stdin is /dev/null: the terminal is
        // kept on 3 first.)
        "exec 3<&0; setsid sh -c 'echo $$ > {}; exec cat <&3 > {}' &",
        thief_file.display(),
        home.join("stolen").display()
    );
    let conf = sb.conf(
        "n.conf",
        &format!(
            "(:pid-file \"n.pid\" :user \"dztest\"\n\
             :main-function #.(lambda ()\n\
               (sb-ext:run-program \"/bin/sh\" (list \"-c\" {}) :input t :output nil :wait t)\n\
               (with-open-file (f {} :direction :output :if-exists :supersede)\n\
                 (print (sb-posix:getpid) f))))",
            lisp_string(&thief),
            lisp_string(lisp_file.to_str().unwrap())
        ),
    );
    let secret = sb.path("secret");
    fs::write(&secret, "root only\n").unwrap();
    chmod(&secret, 0o600);
    // Root's shell, with a terminal (script makes one) and a root-only file
    // open on descriptor 9.
    let inner = format!(
        "exec 9<{} {} {} nodaemon",
        secret.display(),
        bin(),
        conf.display()
    );
    let mut script = sb.at_a_terminal(&inner, Stdio::piped(), Stdio::null());
    let lisp = pid_written(&lisp_file);
    sb.track(lisp);
    let thief = pid_written(&thief_file);
    sb.track(thief);
    let tool_pid: i32 = stat_fields(lisp)[1].parse().unwrap();
    let terminal = |pid: i32| fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
    let roots = terminal(tool_pid);
    assert!(roots.starts_with("/dev/pts"), "{roots:?}");
    assert!(
        terminal(lisp).starts_with("/dev/pts"),
        "the Lisp has a terminal"
    );
    assert_ne!(terminal(lisp), roots, "but not root's");
    assert_ne!(terminal(thief), roots, "nor has the thief");
    assert_ne!(stat_fields(lisp)[4], stat_fields(tool_pid)[4]);
    assert_ne!(
        stat_fields(lisp)[4],
        "0",
        "its own pty is its controlling terminal"
    );
    let fds: Vec<String> = fs::read_dir(format!("/proc/{lisp}/fd"))
        .unwrap()
        .map(|e| {
            fs::read_link(e.unwrap().path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert!(
        !fds.iter().any(|f| f == &secret.display().to_string()),
        "{fds:?}"
    );
    // Root's Ctrl-C reaches the Lisp through its pty and stops it.
    let mut keys = script.stdin.take().unwrap();
    keys.write_all(b"\x03").unwrap();
    keys.flush().unwrap();
    assert!(
        wait_until(30, || script.try_wait().unwrap().is_some()),
        "Ctrl-C ended nodaemon"
    );
    assert!(wait_until(10, || !alive(lisp)));
    assert!(
        wait_until(10, || !alive(thief)),
        "the thief ended with the Lisp's tree"
    );
}

/// Root's terminal on standard output and error is kept from another
/// user's Lisp as well when standard input is not a terminal (`nodaemon
/// </dev/null` in root's shell): the Lisp writes to a pty of its own, and
/// root's terminal keeps its settings.
#[test]
fn nodaemon_keeps_roots_terminal_when_only_its_output_is_one() {
    attacker();
    let sb = open_sandbox();
    let home = attacker_dir(&sb, "home");
    let lisp_file = home.join("lisp.pid");
    let conf = sb.conf(
        "o.conf",
        &format!(
            "(:pid-file \"o.pid\" :user \"dztest\"\n\
             :main-function #.(lambda ()\n\
               (with-open-file (f {} :direction :output :if-exists :supersede)\n\
                 (print (sb-posix:getpid) f))))",
            lisp_string(lisp_file.to_str().unwrap())
        ),
    );
    let before = sb.path("stty-before");
    let inner = format!(
        "stty -g > {}; exec {} {} nodaemon </dev/null",
        before.display(),
        bin(),
        conf.display()
    );
    let mut script = sb.at_a_terminal(&inner, Stdio::piped(), Stdio::null());
    let lisp = pid_written(&lisp_file);
    sb.track(lisp);
    let tool_pid: i32 = stat_fields(lisp)[1].parse().unwrap();
    let fd = |pid: i32, n: u8| fs::read_link(format!("/proc/{pid}/fd/{n}")).unwrap();
    let roots = fd(tool_pid, 1);
    assert!(roots.starts_with("/dev/pts"), "{roots:?}");
    assert_eq!(
        fd(lisp, 0),
        Path::new("/dev/null"),
        "its input as root gave it"
    );
    for n in [1, 2] {
        let lisps = fd(lisp, n);
        assert!(lisps.starts_with("/dev/pts"), "{n}: {lisps:?}");
        assert_ne!(lisps, roots, "{n}: never root's terminal");
    }
    let settings = Command::new("stty")
        .arg("-g")
        .stdin(fs::File::open(&roots).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&settings.stdout),
        fs::read_to_string(&before).unwrap(),
        "root's terminal keeps its settings (no raw mode without a keyboard to relay)"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tool_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(
        wait_until(30, || script.try_wait().unwrap().is_some()),
        "SIGTERM ended nodaemon"
    );
    assert!(wait_until(10, || !alive(lisp)));
}

/// A Lisp that runs as root opens its log files by name: it gets none in a
/// directory a user can change (where a link could send root's lines
/// anywhere).
#[test]
fn a_root_lisp_writes_no_log_file_where_a_user_could_link_it() {
    let user = attacker();
    let sb = open_sandbox();
    let logs = attacker_dir(&sb, "logs");
    let target = sb.path("etc-pwned");
    for name in ["info.log", "error.log"] {
        let link = logs.join(name);
        symlink(&target, &link).unwrap();
        chown(&link, &user);
    }
    let logging = sb.conf(
        "root-logging.conf",
        &format!(
            "(:admin-files-dir {} :admin-info-destination \"info.log\" :admin-error-destination \"error.log\" :admin-trace-destination nil)",
            lisp_string(logs.to_str().unwrap())
        ),
    );
    let conf = sb.conf(
        "r.conf",
        "(:pid-file \"r.pid\" :name \"rootd\" :main-function #.(lambda () t))",
    );
    let env = [("LOGGING_CONF", logging.to_str().unwrap())];
    let pid = started_pid(&sb.run_with(&conf, &["start"], &env));
    let out = sb.run_with(&conf, &["stop"], &env);
    assert_eq!(out.status.code(), Some(0));
    assert!(!alive(pid));
    assert!(!target.exists(), "root's Lisp followed the user's link");
}

/// Supervised restarts read the whole bootstrap again (GNU CLISP reads the
/// descriptor itself), and nobody can change it between restarts.
#[test]
fn every_restart_reads_the_whole_sealed_bootstrap() {
    attacker();
    let sb = open_sandbox();
    let marker = sb.path("started");
    let conf = sb.conf(
        "c.conf",
        &format!(
            "(:pid-file \"c.pid\" :lisp :clisp :restart :on-failure :restart-delay 0.1 :stop-schedule \"TERM/10/KILL/5\"\n\
             :main-function #.(lambda () (with-open-file (f {} :direction :output :if-exists :supersede)\n\
                                          (print (os:process-id) f))))",
            lisp_string(marker.to_str().unwrap())
        ),
    );
    let supervisor = started_pid(&sb.run(&conf, &["start"]));
    let lisp_of = || -> Option<i32> { fs::read_to_string(&marker).ok()?.trim().parse().ok() };
    let first = lisp_of().expect("the first Lisp ran its main function");
    let bootstrap = fs::read_link(format!("/proc/{first}/fd/3")).unwrap();
    assert!(
        bootstrap
            .to_string_lossy()
            .contains("daemonization-bootstrap")
    );
    let mut memfd = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{first}/fd/3"));
    if let Ok(file) = &mut memfd {
        use std::io::Write as _;
        assert!(
            file.write_all(b"(ext:quit 3)").is_err(),
            "the bootstrap is sealed"
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_until(30, || lisp_of().is_some_and(|p| p != first && alive(p))),
        "a restarted Lisp ran its main function"
    );
    assert!(alive(supervisor));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// As root, the Lisp's HOME is root's, whatever HOME sudo kept: the
/// invoking user's `~/.sbclrc` never runs as root.
#[test]
fn a_root_lisp_loads_no_init_file_of_the_invoking_user() {
    let user = attacker();
    let sb = open_sandbox();
    let home = attacker_dir(&sb, "home");
    let marker = sb.path("sbclrc-ran-as-root");
    let rc = home.join(".sbclrc");
    fs::write(
        &rc,
        format!(
            "(with-open-file (f {} :direction :output :if-exists :supersede) (print 1 f))",
            lisp_string(marker.to_str().unwrap())
        ),
    )
    .unwrap();
    chown(&rc, &user);
    let conf = sb.conf(
        "h.conf",
        "(:pid-file \"h.pid\" :main-function #.(lambda () t))",
    );
    let pid = started_pid(&sb.run_with(&conf, &["start"], &[("HOME", home.to_str().unwrap())]));
    let environ =
        String::from_utf8_lossy(&fs::read(format!("/proc/{pid}/environ")).unwrap()).into_owned();
    let root_home = nix::unistd::User::from_uid(0.into()).unwrap().unwrap().dir;
    assert!(
        environ
            .split('\0')
            .any(|v| v == format!("HOME={}", root_home.display()))
    );
    assert!(!marker.exists());
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// `:output` and `:fasl-dir` in a third user's directory (neither root's
/// nor the daemon's user's): refused, nothing written or created there.
#[test]
fn a_third_users_directory_is_not_the_daemons() {
    attacker();
    let sb = open_sandbox();
    let shared = sb.path("eve");
    fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    std::os::unix::fs::chown(&shared, Some(4242), Some(4242)).unwrap();
    let eves = shared.join("out.log");
    fs::write(&eves, "eve's\n").unwrap();
    chmod(&eves, 0o666);
    std::os::unix::fs::chown(&eves, Some(4242), Some(4242)).unwrap();
    for key in [":output", ":fasl-dir"] {
        let path = if key == ":output" {
            eves.clone()
        } else {
            shared.join("fasl")
        };
        let conf = sb.conf(
            "t.conf",
            &format!(
                "(:pid-file \"t.pid\" :user \"dztest\" {key} {} :main-function #.(lambda () (print \"secret\")))",
                lisp_string(path.to_str().unwrap())
            ),
        );
        let out = sb.run(&conf, &["start"]);
        assert_eq!(out.status.code(), Some(1), "{key}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("is owned by uid 4242, not root or the daemon's user dztest;"),
            "{key}: {}",
            stderr(&out)
        );
    }
    assert_eq!(fs::read_to_string(&eves).unwrap(), "eve's\n");
    assert!(!shared.join("fasl").exists());
}

/// Every Lisp reports readiness when it runs as the `:user` (its readiness
/// pipe is root's: it writes the descriptor it holds, never reopens it).
#[test]
fn every_lisp_runs_as_the_user() {
    let user = attacker();
    for lisp in ["sbcl", "ecl", "clisp"] {
        let sb = open_sandbox();
        let conf = sb.conf(
            "u.conf",
            &format!(
                "(:pid-file \"u.pid\" :lisp :{lisp} :user \"dztest\" :stop-schedule \"TERM/10/KILL/5\" :main-function #.(lambda () t))"
            ),
        );
        let out = sb.run(&conf, &["start"]);
        let p = sb.pid_file("u.pid").display().to_string();
        let pid = started_pid(&out);
        assert_line(
            &out,
            0,
            &format!("success started (pid = {pid} pid-file = {p})"),
        );
        assert_eq!(
            proc_status(pid, "Uid").split_whitespace().next(),
            Some(user.uid.to_string().as_str()),
            "{lisp}"
        );
        assert_line(
            &sb.run(&conf, &["stop"]),
            0,
            &format!("success stopped (pid = {pid} pid-file = {p})"),
        );
    }
}

/// Root runs `start` from a directory the attacker owns: the root daemon's
/// relative paths do not resolve there (the attacker's `init.lisp` would
/// run as root); from root's own directory they do.
#[test]
fn a_root_daemon_never_resolves_paths_in_a_users_directory() {
    let sb = open_sandbox();
    let hostile = attacker_dir(&sb, "hostile");
    let ran = sb.path("ran-as");
    fs::write(
        hostile.join("init.lisp"),
        format!(
            "(with-open-file (s {} :direction :output :if-exists :supersede) (print :attacker s))",
            lisp_string(ran.to_str().unwrap())
        ),
    )
    .unwrap();
    chown(&hostile.join("init.lisp"), &attacker());
    let conf = sb.conf(
        "site.conf",
        "(:pid-file \"site.pid\" :name \"site\"\n \
         :main-function #.(lambda () (load \"init.lisp\" :if-does-not-exist nil)))",
    );
    let out = sb
        .command(&conf, &["start"])
        .current_dir(&hostile)
        .output()
        .unwrap();
    let pid = started_pid(&out);
    sb.track(pid);
    assert!(!ran.exists(), "the attacker's init.lisp ran as root");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    // From root's own directory, the same conf loads root's init.lisp (a
    // name with [ and * is a name, not a wildcard).
    let own = sb.path("own [1]*");
    fs::create_dir(&own).unwrap();
    fs::copy(hostile.join("init.lisp"), own.join("init.lisp")).unwrap();
    let out = sb
        .command(&conf, &["start"])
        .current_dir(&own)
        .output()
        .unwrap();
    sb.track(started_pid(&out));
    assert!(
        ran.exists(),
        "root's own init.lisp, relative to where start ran"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// The daemon's user points its `:output` at a root-only file: root's
/// `log` and `status -v` never read through the link.
#[test]
fn log_never_reads_through_a_users_link() {
    let sb = open_sandbox();
    let dir = attacker_dir(&sb, "out");
    let secret = sb.path("secret");
    fs::write(&secret, "root's secret\n").unwrap();
    chmod(&secret, 0o600);
    let output = dir.join("site.log");
    let conf = sb.conf(
        "site.conf",
        &format!(
            "(:pid-file \"site.pid\" :user \"dztest\" :output {} :main-function #.(lambda () t))",
            lisp_string(output.to_str().unwrap())
        ),
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    sb.track(pid);
    // The attacker swaps the log for a link to root's file.
    let swap = as_attacker("sh")
        .arg("-c")
        .arg(format!(
            "rm -f {o} && ln -s {s} {o}",
            o = output.display(),
            s = secret.display()
        ))
        .status()
        .unwrap();
    assert!(swap.success());
    let out = sb.run(&conf, &["log"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stdout(&out).contains("secret"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("it is a symbolic link, which is never followed here"),
        "{}",
        stderr(&out)
    );
    let status = stdout(&sb.run(&conf, &["status", "-v"]));
    assert!(!status.contains("secret"), "{status}");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// Root runs a command over a directory of confs another user can write:
/// refused before anything in it is read (the user would choose the confs
/// and how many processes root starts).
#[test]
fn a_directory_of_confs_of_a_user_is_refused() {
    let sb = open_sandbox();
    let dir = attacker_dir(&sb, "confs");
    fs::write(dir.join("a.conf"), "(:pid-file \"a.pid\")").unwrap();
    let out = sb.run(&dir, &["status"]);
    assert_refusal_says(
        &out,
        1,
        &format!(
            "refusing the directory of confs {}: it is owned by dztest, not root",
            dir.display()
        ),
    );
    assert_eq!(stdout(&out), "");
}

/// A core is code: root never runs its daemon on a core another user can
/// write (here the user's own file), whatever its manifest says.
#[test]
fn a_core_of_a_user_is_refused() {
    let sb = open_sandbox();
    let dir = attacker_dir(&sb, "cores");
    let core = dir.join("site.core");
    fs::write(&core, "not an image").unwrap();
    chown(&core, &attacker());
    let conf = sb.conf(
        "site.conf",
        &format!(
            "(:pid-file \"site.pid\" :core {})",
            lisp_string(core.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    assert_refusal_says(
        &out,
        1,
        &format!("refusing the core file {}", core.display()),
    );
    assert!(!sb.pid_file("site.pid").exists());
}

// The daemon is a stranger: the attacks below are the daemon's own code,
// run as its `:user` (dztest) from the conf's :main-function, against root
// running the tool's commands on the daemon's root-owned conf.

/// Lisp code that writes `text` on the readiness pipe (descriptor 4, which
/// the bootstrap writes its words on).
fn say_on_readiness_pipe(text: &str) -> String {
    format!(
        "(let ((s (sb-sys:make-fd-stream 4 :output t :buffering :none))) \
           (write-string {} s) (finish-output s))",
        lisp_string(text)
    )
}

/// Lisp code that writes its pid to `file`.
fn note_own_pid(file: &Path) -> String {
    format!(
        "(with-open-file (f {} :direction :output :if-exists :supersede) \
           (print (sb-posix:getpid) f))",
        lisp_string(file.to_str().unwrap())
    )
}

/// A conf of the test user's daemon whose :main-function is `body`.
fn stranger_conf(sb: &Sandbox, name: &str, keys: &str, body: &str) -> PathBuf {
    sb.conf(
        &format!("{name}.conf"),
        &format!(
            "(:pid-file \"{name}.pid\" :user \"dztest\" {keys}\n :main-function #.(lambda () {body}))"
        ),
    )
}

/// A process of a third user (nobody) that nothing should ever signal.
fn victim(sb: &Sandbox) -> Child {
    let child = Command::new("sleep")
        .arg("600")
        .uid(65534)
        .gid(65534)
        .spawn()
        .unwrap();
    sb.track(child.id() as i32);
    child
}

/// Rule 1. The daemon's pid is the tool's own fork's: a Lisp that names
/// another process on the readiness pipe has broken the protocol; its start
/// fails at once, and the process it named (a third user's) is never
/// signalled (the old tool killed it after its 10 s wait, as root).
#[test]
fn a_pid_the_lisp_names_is_never_believed() {
    attacker();
    let sb = open_sandbox();
    let mut victim = victim(&sb);
    let lisp_file = attacker_dir(&sb, "home").join("lisp.pid");
    for (name, forged) in [("forged", "pid"), ("held", "running")] {
        let conf = stranger_conf(
            &sb,
            name,
            "",
            &format!(
                "{} {} (sb-ext:exit :code 1 :abort t)",
                note_own_pid(&lisp_file),
                say_on_readiness_pipe(&format!("{forged} {}\n", victim.id()))
            ),
        );
        let out = bounded(sb.command(&conf, &["start"]), 30);
        assert_line(
            &out,
            1,
            &format!(
                "failed started - internal-error (pid-file = {})",
                sb.pid_file(&format!("{name}.pid")).display()
            ),
        );
        assert_eq!(
            stderr(&out),
            format!(
                "ERROR: the daemon's Lisp broke the readiness protocol: it said \"{forged} {}\" \
                 where only status, ready or error may come; it was ended, with every process it started\n",
                victim.id()
            )
        );
        let lisp = fs::read_to_string(&lisp_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!alive(lisp), "the Lisp itself was ended");
        assert!(victim.try_wait().unwrap().is_none(), "the victim lives");
        assert!(!sb.pid_file(&format!("{name}.pid")).exists());
    }
    // A Lisp that says `ready` itself is started as the process it is.
    let conf = stranger_conf(
        &sb,
        "ready",
        "",
        &format!(
            "{} {}",
            note_own_pid(&lisp_file),
            say_on_readiness_pipe("ready\n")
        ),
    );
    let started = started_pid(&sb.run(&conf, &["start"]));
    let lisp: i32 = fs::read_to_string(&lisp_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(started, lisp);
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    let _ = victim.kill();
}

/// Rule 2. Words that would have the tool wait on the Lisp (a set-up
/// error, or an error report, and then the Lisp lives on holding its pipe)
/// end the start within its timeout plus a second, and the Lisp with it.
#[test]
fn a_lisp_cannot_stretch_the_start_with_its_words() {
    attacker();
    let sb = open_sandbox();
    let lisp_file = attacker_dir(&sb, "home").join("lisp.pid");
    for (name, words, line) in [
        ("setup", "setup-error all is well\n", "internal-error"),
        ("report", "error\nall is well\n", "main-function-error"),
    ] {
        let conf = stranger_conf(
            &sb,
            name,
            ":start-timeout 2",
            &format!(
                "{} {} (loop (sleep 10))",
                note_own_pid(&lisp_file),
                say_on_readiness_pipe(words)
            ),
        );
        let began = Instant::now();
        let out = bounded(sb.command(&conf, &["start"]), 30);
        let took = began.elapsed();
        assert_line(
            &out,
            1,
            &format!(
                "failed started - {line} (pid-file = {})",
                sb.pid_file(&format!("{name}.pid")).display()
            ),
        );
        assert_eq!(stderr(&out), "ERROR: all is well\n");
        assert!(
            took < Duration::from_secs(3),
            "start took {took:?} with :start-timeout 2"
        );
        let lisp = fs::read_to_string(&lisp_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(wait_until(10, || !alive(lisp)), "the Lisp was ended");
    }
}

/// Rule 2. The Lisp shares its reload pipe's read end with the tool's
/// reads (a duplicate of its descriptor) and keeps making it blocking: the
/// tool reads through a description of its own, so every reload returns
/// within its timeout (the old tool blocked for ever in its first read).
/// The Lisp may well hang its own reload so (its bootstrap drains that
/// pipe too): then the reload says so.
#[test]
fn a_lisp_cannot_hang_reload_through_a_shared_pipe() {
    attacker();
    let sb = open_sandbox();
    let conf = stranger_conf(
        &sb,
        "blocking",
        ":reload-function #.(lambda () t)",
        "(require :sb-posix) \
         (sb-thread:make-thread (lambda () (loop (sb-posix:fcntl 9 sb-posix:f-setfl 0)))) t",
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    let p = sb.pid_file("blocking.pid").display().to_string();
    for _ in 0..3 {
        let began = Instant::now();
        let out = bounded(sb.command(&conf, &["--timeout", "2", "reload"]), 20);
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "{:?}",
            began.elapsed()
        );
        let answers = [
            (
                Some(0),
                format!("success reloaded (pid = {pid} pid-file = {p})\n"),
                String::new(),
            ),
            (
                Some(1),
                format!("failed reloaded - internal-error (pid-file = {p})\n"),
                format!(
                    "ERROR: no word from :reload-function of the daemon (pid = {pid}) within 2 s: \
                     it may still be running (see the daemon's log)\n"
                ),
            ),
        ];
        let got = (out.status.code(), stdout(&out), stderr(&out));
        assert!(answers.contains(&got), "{got:?}");
    }
    assert_eq!(sb.run(&conf, &["kill"]).status.code(), Some(0));
}

/// Lisp code that starts, as the daemon's user, a child that ignores the
/// stop signals and a `setsid`ed, double-forked grandchild that ignores
/// them too; each writes its pid to `pids`.
fn leave_processes(pids: &Path) -> String {
    let ignore = "trap '' TERM USR1 HUP INT";
    let escapee = format!(
        "{ignore}; setsid sh -c \"{ignore}; echo \\$\\$ >> {0}; exec sleep 600\" & \
         echo $$ >> {0}; exec sleep 600",
        pids.display()
    );
    format!(
        "(let ((p (sb-ext:run-program \"/bin/sleep\" (list \"600\") :wait nil :input nil :output nil))) \
           (with-open-file (f {0} :direction :output :if-exists :append :if-does-not-exist :create) \
             (format f \"~d~%\" (sb-ext:process-pid p)))) \
         (sb-ext:run-program \"/bin/sh\" (list \"-c\" {1}) :wait nil :input nil :output nil) \
         (loop until (with-open-file (f {0}) (= 3 (loop for l = (read-line f nil) while l count t)))) \
         t",
        lisp_string(pids.to_str().unwrap()),
        lisp_string(&escapee)
    )
}

/// The pids `leave_processes` wrote, once all three are there.
fn left_processes(sb: &Sandbox, pids: &Path) -> Vec<i32> {
    assert!(wait_until(30, || fs::read_to_string(pids)
        .is_ok_and(|t| t.lines().count() == 3)));
    let found: Vec<i32> = fs::read_to_string(pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    for pid in &found {
        sb.track(*pid);
        assert!(alive(*pid), "{pid} runs while the daemon does");
    }
    fs::remove_file(pids).unwrap();
    found
}

#[track_caller]
fn assert_all_gone(pids: &[i32], after: &str) {
    for pid in pids {
        assert!(
            wait_until(10, || !alive(*pid)),
            "process {pid} of the daemon outlived {after}"
        );
    }
}

/// Rule 3. The daemon is its whole tree: what its Lisp started (a child
/// that ignores the stop signals, a `setsid`ed double-forked grandchild)
/// is gone after stop, kill, restart, a failed start, a supervisor's
/// restart and a zap of a daemon that died; `status -v` counts them.
#[test]
fn the_daemons_whole_tree_ends_with_it() {
    attacker();
    let sb = open_sandbox();
    let pids = attacker_dir(&sb, "home").join("pids");
    let conf = stranger_conf(&sb, "tree", ":stop-timeout 2", &leave_processes(&pids));
    let daemon = started_pid(&sb.run(&conf, &["start"]));
    let left = left_processes(&sb, &pids);
    let verbose = stdout(&sb.run(&conf, &["status", "-v"]));
    assert!(verbose.contains("  processes:  4\n"), "{verbose}");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert_all_gone(&left, "stop");
    assert!(!alive(daemon));

    started_pid(&sb.run(&conf, &["start"]));
    let left = left_processes(&sb, &pids);
    assert_eq!(sb.run(&conf, &["restart"]).status.code(), Some(0));
    assert_all_gone(&left, "restart");
    let left = left_processes(&sb, &pids);
    assert_eq!(sb.run(&conf, &["kill"]).status.code(), Some(0));
    assert_all_gone(&left, "kill");

    // The daemon dies (not by the tool): what it left goes with the zap.
    let daemon = started_pid(&sb.run(&conf, &["start"]));
    let left = left_processes(&sb, &pids);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(10, || !alive(daemon)));
    assert!(alive(left[0]) && alive(left[2]), "the kernel leaves them");
    assert_eq!(sb.run(&conf, &["zap", "--force"]).status.code(), Some(0));
    assert_all_gone(&left, "zap --force");

    // A start that fails.
    let failing = stranger_conf(
        &sb,
        "failing",
        "",
        &format!("{} (error \"no\")", leave_processes(&pids)),
    );
    let out = sb.run(&failing, &["start"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let left: Vec<i32> = fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(left.len(), 3);
    fs::remove_file(&pids).unwrap();
    assert_all_gone(&left, "a failed start");

    // A supervisor's restart: the first Lisp's tree goes before the next.
    let supervised = stranger_conf(
        &sb,
        "restarting",
        ":restart :on-failure :restart-delay 0.1",
        &leave_processes(&pids),
    );
    let supervisor = started_pid(&sb.run(&supervised, &["start"]));
    let left = left_processes(&sb, &pids);
    let lisp: i32 = stat_lisp_child(supervisor);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lisp),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_all_gone(&left, "the supervisor's restart");
    let second = left_processes(&sb, &pids);
    assert_eq!(sb.run(&supervised, &["stop"]).status.code(), Some(0));
    assert_all_gone(&second, "stop of a supervised daemon");
    assert!(!alive(supervisor));
}

/// Rule 3. A Lisp that ends while a process it forked keeps the start's
/// readiness pipe open is seen to end at once: the start fails (its
/// `:start-timeout` is not waited for), saying how, and what it left is
/// gone with its pid file.
#[test]
fn a_start_sees_its_lisp_end_though_a_child_holds_its_pipe() {
    attacker();
    let sb = open_sandbox();
    let pids = attacker_dir(&sb, "home").join("pids");
    for (name, ending, said) in [
        (
            "killed",
            "(sb-posix:kill (sb-posix:getpid) 9)",
            "was killed by SIGKILL before it was ready",
        ),
        ("failing", "(error \"main fails\")", "main fails"),
    ] {
        // The fork inherits every descriptor, the pipe's too (so no
        // control socket: SBCL forks only with one thread).
        let conf = stranger_conf(
            &sb,
            name,
            ":start-timeout 600 :control nil",
            &format!(
                "(let ((pid (sb-posix:fork)))\n\
                   (when (zerop pid) (sb-posix:setsid) (loop (sleep 1)))\n\
                   (with-open-file (f {pids} :direction :output :if-does-not-exist :create)\n\
                     (format f \"~d~%\" pid))\n\
                   {ending})",
                pids = lisp_string(pids.to_str().unwrap()),
            ),
        );
        let start = sb.command(&conf, &["start"]);
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bounded(start, 120)));
        // Ended by the sandbox even if the start hung.
        let left: i32 = fs::read_to_string(&pids).unwrap().trim().parse().unwrap();
        sb.track(left);
        let out = out.unwrap_or_else(|hung| std::panic::resume_unwind(hung));
        fs::remove_file(&pids).unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stdout(&out));
        assert!(stderr(&out).contains(said), "{name}: {}", stderr(&out));
        assert_all_gone(&[left], name);
        assert!(!sb.pid_file(&format!("{name}.pid")).exists(), "{name}");
    }
}

/// `:ready (:port N)` counts only a listener of the daemon's user: an
/// unrelated user (nobody) listening on the port first does not make the
/// daemon look ready, to `start` or to `status`.
#[test]
fn another_users_listener_is_no_readiness() {
    attacker();
    let sb = open_sandbox();
    let port = free_port();
    let go = sb.path("go");
    let mut squatter = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import socket, sys\n\
                 s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(50)\n\
                 sys.stdin.read()"
            ),
        ])
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    sb.track(squatter.id() as i32);
    assert!(wait_until(30, || std::net::TcpStream::connect((
        "127.0.0.1",
        port
    ))
    .is_ok()));
    let conf = stranger_conf(
        &sb,
        "port",
        &format!(":ready (:port {port})"),
        &format!(
            "(require :sb-bsd-sockets)\n\
             (loop until (probe-file {go}) do (sleep 0.02))\n\
             (let ((s (make-instance (find-symbol \"INET-SOCKET\" \"SB-BSD-SOCKETS\") :type :stream :protocol :tcp)))\n\
               (setf (sb-bsd-sockets:sockopt-reuse-address s) t)\n\
               (sb-bsd-sockets:socket-bind s #(127 0 0 1) {port})\n\
               (sb-bsd-sockets:socket-listen s 5)\n\
               (loop (sb-bsd-sockets:socket-close (sb-bsd-sockets:socket-accept s))))",
            go = lisp_string(go.to_str().unwrap()),
        ),
    );
    let out = sb.run(&conf, &["--timeout", "1", "start"]);
    sb.track(pid_in(&stdout(&out)).expect("a pid"));
    assert!(
        stderr(&out).contains("the daemon is still initializing: nothing answered"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&sb.run(&conf, &["status"])).starts_with("activating "));
    drop(squatter.stdin.take());
    squatter.wait().unwrap();
    fs::write(&go, "").unwrap();
    assert!(wait_until(30, || stdout(&sb.run(&conf, &["status"]))
        .starts_with("running ")));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// The supervisor's Lisp: its one child that runs the Lisp program.
fn stat_lisp_child(supervisor: i32) -> i32 {
    let mut lisp = None;
    assert!(wait_until(10, || {
        lisp = fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let fields = stat_fields(pid);
            (fields.get(1) == Some(&supervisor.to_string())
                && fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p.ends_with("sbcl")))
            .then_some(pid)
        });
        lisp.is_some()
    }));
    lisp.unwrap()
}

/// Lisp code for a text with the controls a fake line needs: erase the
/// line, return to its start, print the tool's success, ring.
const EVIL: &str = "(format nil \"boom~c[2K~csuccess started (pid = 1)~c~c]0;owned~c~%success started\" \
                    (code-char 27) (code-char 13) (code-char 7) (code-char 27) (code-char 7))";

/// Asserts `bytes` (what the tool printed for `what`) hold no control
/// character but newline and tab, show the Lisp's as escapes, and have no
/// line after the first that begins like one of the tool's result lines.
#[track_caller]
fn assert_shown(bytes: &[u8], what: &str) {
    let text = String::from_utf8_lossy(bytes);
    assert_no_raw(bytes, what);
    assert!(
        text.contains("\\x1b[2K\\rsuccess started"),
        "{what}: {text:?}"
    );
    for line in text.lines().skip(1) {
        let line = line
            .split_once(": ")
            .filter(|_| what.contains("directory"))
            .map_or(line, |(_, l)| l);
        assert!(
            !line.starts_with("success") && !line.starts_with("ERROR"),
            "{what}: a line of the Lisp's reads as the tool's: {text:?}"
        );
    }
}

/// Asserts `bytes` hold no control character but newline and tab.
#[track_caller]
fn assert_no_raw(bytes: &[u8], what: &str) {
    let raw = bytes
        .iter()
        .any(|b| (*b < 0x20 && *b != b'\n' && *b != b'\t') || *b == 0x7f);
    assert!(!raw, "{what}: {:?}", String::from_utf8_lossy(bytes));
}

/// Rule 4. Nothing of the Lisp's text reaches root's terminal or logs raw:
/// its condition text in start's ERROR line (in every print style, and in
/// the log file), a reload's error, status -v's last lines, log and
/// log -f, and the lines of a directory of confs.
#[test]
fn the_lisps_text_is_shown_never_raw() {
    use std::io::Read as _;
    attacker();
    let sb = open_sandbox();
    let home = attacker_dir(&sb, "home");
    let failing = stranger_conf(&sb, "failing", "", &format!("(error \"~a\" {EVIL})"));
    let out = sb.run(&failing, &["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert_shown(&out.stderr, "start's error");
    for style in ["plist", "json"] {
        let out = sb.run(&failing, &["--print", style, "start"]);
        assert_shown(&out.stderr, style);
        assert_no_raw(&out.stdout, style);
    }
    // One record a line, its text a Lisp string (backslashes doubled).
    assert_no_raw(sb.log().as_bytes(), "the log file");
    assert!(
        sb.log().contains("boom\\\\x1b[2K\\\\rsuccess started"),
        "{}",
        sb.log()
    );

    let output = home.join("out.log");
    let talking = stranger_conf(
        &sb,
        "talking",
        &format!(
            ":output {} :reload-function #.(lambda () (error \"~a\" {EVIL}))",
            lisp_string(output.to_str().unwrap())
        ),
        &format!("(write-line {EVIL}) (finish-output) t"),
    );
    started_pid(&sb.run(&talking, &["start"]));
    let out = sb.run(&talking, &["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert_shown(&out.stderr, "reload's error");
    assert_shown(&sb.run(&talking, &["status", "-v"]).stdout, "status -v");
    for style in ["plist", "json"] {
        let out = sb.run(&talking, &["--print", style, "status", "-v"]).stdout;
        assert_no_raw(&out, style);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("[2K") && text.contains("success started"),
            "{text}"
        );
    }
    // `log` prints the daemon's own lines (and no line of the tool's):
    // their controls shown.
    let shown_output = |bytes: &[u8], what: &str| {
        assert_no_raw(bytes, what);
        let text = String::from_utf8_lossy(bytes);
        assert!(
            text.contains("boom\\x1b[2K\\rsuccess started"),
            "{what}: {text}"
        );
    };
    shown_output(&sb.run(&talking, &["log"]).stdout, "log");
    let raw = sb.run(&talking, &["log", "--raw"]).stdout;
    assert!(
        raw.windows(5).any(|w| w == b"\x1b[2K\r"),
        "log --raw prints the bytes"
    );
    let mut follow = sb
        .command(&talking, &["log", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    sb.track(follow.id() as i32);
    let mut pipe = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buffer) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&seen).into_owned();
            if text.contains("boom\\x1b[2K\\rsuccess started") || text.contains('\x1b') {
                let _ = tx.send(seen.clone());
                break;
            }
        }
    });
    let seen = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("log -f prints the output");
    let _ = follow.kill();
    let _ = follow.wait();
    shown_output(&seen, "log -f");
    assert_eq!(sb.run(&talking, &["stop"]).status.code(), Some(0));

    let fleet = sb.path("fleet");
    fs::create_dir(&fleet).unwrap();
    fs::copy(&failing, fleet.join("failing.conf")).unwrap();
    let out = sb.run(&fleet, &["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert_shown(&out.stderr, "a directory's lines");
}

/// Rule 6. The root Lisp that runs `:before-parent-exit-fn` starts in a
/// directory only root can change (the caller's, if it is one; else `/`),
/// and its `*default-pathname-defaults*` is that directory: a relative
/// `(load ...)` never finds a file of the daemon's user, even when root
/// runs `start` from the user's own directory.
#[test]
fn a_root_lisp_never_starts_in_a_users_directory() {
    attacker();
    let sb = open_sandbox();
    let home = attacker_dir(&sb, "home");
    let marker = sb.path("loaded-as-root");
    fs::write(
        home.join("evil.lisp"),
        format!(
            "(with-open-file (f {} :direction :output) (print :owned f))",
            lisp_string(marker.to_str().unwrap())
        ),
    )
    .unwrap();
    chown(&home.join("evil.lisp"), &attacker());
    let seen = sb.path("seen");
    let conf = sb.conf(
        "cwd.conf",
        &format!(
            "(:pid-file \"cwd.pid\" :user \"dztest\" :main-function #.(lambda () t)\n \
             :before-parent-exit-fn #.(lambda (pid status) (declare (ignore pid status))\n \
               (with-open-file (f {} :direction :output :if-exists :supersede)\n \
                 (format f \"~a ~a\" (namestring *default-pathname-defaults*) (sb-posix:getcwd)))\n \
               (ignore-errors (load \"evil.lisp\"))))",
            lisp_string(seen.to_str().unwrap())
        ),
    );
    let trusted = sb.path("root-only");
    fs::create_dir(&trusted).unwrap();
    for (dir, expected) in [
        (&home, "/ /".to_string()),
        (
            &trusted,
            format!("{}/ {}", trusted.display(), trusted.display()),
        ),
    ] {
        let mut start = sb.command(&conf, &["start"]);
        start.current_dir(dir);
        let out = start.output().unwrap();
        let pid = started_pid(&out);
        sb.track(pid);
        assert_eq!(fs::read_to_string(&seen).unwrap(), expected);
        assert!(!marker.exists(), "root loaded the user's file");
        assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    }
}

/// A conf whose core the test user's builder makes, with `preload`.
fn builder_conf(sb: &Sandbox, name: &str, preload: &str) -> PathBuf {
    sb.conf(
        &format!("{name}.conf"),
        &format!(
            "(:pid-file \"{name}.pid\" :user \"dztest\" :main-function #.(lambda () t)\n \
             :core {} :preload ({preload}))",
            lisp_string(sb.path(&format!("{name}.core")).to_str().unwrap())
        ),
    )
}

/// The staging directories builds left in `dir`.
fn stagings(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".build-")
        })
        .collect()
}

/// The CPU time a process has used so far (utime + stime, /proc).
fn cpu_of(pid: i32) -> Duration {
    let fields = stat_fields(pid);
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf takes a constant and returns a number.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Rule 3. What a build's preload starts, in a session of its own, ends
/// with the build.
#[test]
fn a_builders_tree_ends_with_the_build() {
    attacker();
    let sb = open_sandbox();
    let home = attacker_dir(&sb, "home");
    let left = home.join("left.pid");
    let conf = builder_conf(
        &sb,
        "leaver",
        &format!(
            "#.(lambda () (sb-ext:run-program \"/usr/bin/setsid\" \
               (list \"-f\" \"sh\" \"-c\" {}) :wait t))",
            lisp_string(&format!("echo $$ > {}; exec sleep 600", left.display()))
        ),
    );
    let out = sb.run(&conf, &["build-core"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let leaver = pid_written(&left);
    sb.track(leaver);
    assert!(
        wait_until(10, || !alive(leaver)),
        "the preload's setsid child {leaver} outlived the build"
    );
}

/// Rule 2. A builder that closes its pipe and lives on is waited for
/// without a spin: root's build-core uses next to no CPU meanwhile.
#[test]
fn a_builder_that_hangs_up_does_not_spin_root() {
    attacker();
    let sb = open_sandbox();
    let home = attacker_dir(&sb, "home");
    let (closed, later) = (home.join("closed"), home.join("later"));
    let mark = |file: &Path| {
        format!(
            "(with-open-file (f {} :direction :output) (print 1 f))",
            lisp_string(file.to_str().unwrap())
        )
    };
    let conf = builder_conf(
        &sb,
        "spin",
        &format!(
            "#.(lambda () (sb-alien:alien-funcall (sb-alien:extern-alien \"close\" \
               (function sb-alien:int sb-alien:int)) 4) {} (sleep 3) {} (sleep 1))",
            mark(&closed),
            mark(&later)
        ),
    );
    let mut tool = sb
        .command(&conf, &["build-core"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = tool.id() as i32;
    assert!(
        wait_until(30, || closed.exists()),
        "the builder closed its pipe"
    );
    let before = cpu_of(pid);
    assert!(wait_until(30, || later.exists()));
    let spent = cpu_of(pid) - before;
    assert!(
        spent < Duration::from_millis(500),
        "root's build-core used {spent:?} of CPU in the builder's 3 s"
    );
    let status = tool.wait().unwrap();
    assert_eq!(status.code(), Some(1), "nothing was saved");
    assert!(stagings(sb.dir.path()).is_empty());
}

/// Rule 7. A builder's user who goes on writing the saved image (making it
/// 16 GiB, sparse, and back, while root copies it) gets no more than it
/// saved copied, or nothing; and the build's staging directory, full of
/// the user's files, is removed with the user's power, or its failure is
/// told.
#[test]
fn root_copies_only_the_image_it_judged() {
    attacker();
    let sb = open_sandbox();
    let home = attacker_dir(&sb, "home");
    let extender_pid = home.join("extender.pid");
    let extend = format!(
        "b=$PPID; setsid sh -c 'echo $$ > {}; f=\"$1\"; while kill -0 '$b' 2>/dev/null; do sleep 0.01; done; \
         n=$(stat -c %s \"$f\"); while [ -e \"$f\" ]; do truncate -c -s 16G \"$f\"; truncate -c -s \"$n\" \"$f\"; done' sh \"$1\" &",
        extender_pid.display()
    );
    let conf = builder_conf(
        &sb,
        "sparse",
        &format!(
            "#.(lambda () (sb-ext:run-program \"/bin/sh\" (list \"-c\" {} \"sh\" \
               (namestring (symbol-value (intern \"*CORE-FILE*\" \"DAEMONIZATION-BOOTSTRAP\")))) \
               :wait t :input nil :output nil :error nil))",
            lisp_string(&extend)
        ),
    );
    let out = bounded(sb.command(&conf, &["build-core"]), 300);
    let extender = pid_written(&extender_pid);
    sb.track(extender);
    let core = sb.path("sparse.core");
    match out.status.code() {
        Some(0) => {
            let size = fs::metadata(&core).unwrap().len();
            assert!(size < 1 << 30, "root installed {size} bytes");
        }
        _ => assert!(!core.exists(), "{}", stderr(&out)),
    }
    assert!(
        stagings(sb.dir.path()).is_empty(),
        "{:?}",
        stagings(sb.dir.path())
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(extender),
        nix::sys::signal::Signal::SIGKILL,
    );

    // A tree its user cannot remove: the build says so.
    let conf = builder_conf(
        &sb,
        "stuck",
        "#.(lambda () (let ((dir (merge-pathnames \"stuck/\" (symbol-value (intern \"*CORE-FILE*\" \
           \"DAEMONIZATION-BOOTSTRAP\"))))) (ensure-directories-exist (merge-pathnames \"f\" dir)) \
           (with-open-file (f (merge-pathnames \"f\" dir) :direction :output) (print 1 f)) \
           (sb-ext:run-program \"/bin/chmod\" (list \"0500\" (directory-namestring dir)))))",
    );
    let out = sb.run(&conf, &["build-core"]);
    let left = stagings(sb.dir.path());
    assert_eq!(left.len(), 1, "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "ERROR: cannot remove {}: its owner could not remove what it holds; remove it by hand\n",
            left[0].display()
        )
    );
    fs::remove_dir_all(&left[0]).unwrap();
}

/// Rule 7. A rotation that fails (the daemon's user made FILE.1 a
/// directory) stops the writing: the root supervisor never grows the file
/// past :output-max-size.
#[test]
fn a_failed_rotation_stops_the_writing() {
    attacker();
    let sb = open_sandbox();
    let home = attacker_dir(&sb, "home");
    let output = home.join("out.log");
    let block = home.join("out.log.1");
    let conf = stranger_conf(
        &sb,
        "flood",
        &format!(
            ":restart :on-failure :output {} :output-max-size \"64K\" :output-keep 1",
            lisp_string(output.to_str().unwrap())
        ),
        &format!(
            "(ensure-directories-exist {}) \
             (with-open-file (f {} :direction :output) (print 1 f)) \
             (dotimes (i 20000) (format t \"line ~d of a flood that root must not write past its cap~%\" i)) \
             (finish-output) t",
            lisp_string(&format!("{}/", block.display())),
            lisp_string(&format!("{}/keep", block.display()))
        ),
    );
    started_pid(&sb.run(&conf, &["start"]));
    // The supervisor writes what is left of the output before it exits.
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    let size = fs::metadata(&output).unwrap().len();
    assert!(size <= 64 * 1024, "the :output grew to {size} bytes");
    assert!(size > 32 * 1024, "it was written up to its cap: {size}");
}

/// Rule 7. A rotation the daemon's user defeats by moving each FILE.1 out
/// of the rotation's way (its bytes stay on the disk) stops the writing as
/// well: what root wrote, wherever the user put it, stays within
/// :output-keep + 2 files of :output-max-size.
#[test]
fn rotated_files_moved_away_do_not_let_root_write_on() {
    attacker();
    let sb = open_sandbox();
    let home = attacker_dir(&sb, "home");
    let output = home.join("out.log");
    let rotated = home.join("out.log.1");
    let conf = stranger_conf(
        &sb,
        "mover",
        &format!(
            ":restart :on-failure :output {} :output-max-size \"16K\" :output-keep 1",
            lisp_string(output.to_str().unwrap())
        ),
        &format!(
            "(dotimes (i 20000) \
               (format t \"line ~d of a flood that root must not write past its cap~%\" i) \
               (when (zerop (mod i 20)) (finish-output) \
                 (when (probe-file {old}) \
                   (ignore-errors (sb-posix:rename {old} (format nil \"{home}/stolen-~d\" i)))))) \
             (finish-output) t",
            old = lisp_string(rotated.to_str().unwrap()),
            home = home.display()
        ),
    );
    started_pid(&sb.run(&conf, &["start"]));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    let mut total = 0;
    let mut stolen = 0;
    for entry in fs::read_dir(&home).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        stolen += usize::from(name.starts_with("stolen-"));
        total += entry.metadata().unwrap().len();
    }
    assert!(stolen > 0, "the user moved rotated files away");
    assert!(
        total <= 4 * 16 * 1024,
        "root wrote {total} bytes into {stolen} moved files and the rotation"
    );
}

/// Rule 4. The build's progress line on root's terminal names what the
/// builder says it loads, shown, never raw: the only escape sequence is
/// the tool's own (erase the line).
#[test]
fn the_build_progress_line_is_shown() {
    use std::io::Read as _;
    attacker();
    let sb = open_sandbox();
    let conf = builder_conf(
        &sb,
        "progress",
        "#.(lambda () (funcall (intern \"SAY\" \"DAEMONIZATION-BOOTSTRAP\") \
           (format nil \"loading ~c]0;owned~c~c[2K\" (code-char 27) (code-char 7) (code-char 27))))",
    );
    let inner = format!("exec {} {} build-core", bin(), conf.display());
    let mut script = sb.at_a_terminal(&inner, Stdio::piped(), Stdio::piped());
    let mut seen = Vec::new();
    script
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut seen)
        .unwrap();
    assert!(script.wait().unwrap().success());
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("loading \\x1b]0;owned\\x07\\x1b[2K ("),
        "{text:?}"
    );
    for (at, _) in text.match_indices('\x1b') {
        assert!(
            text[at..].starts_with("\x1b[K"),
            "a raw escape at {at}: {text:?}"
        );
    }
    assert!(!seen.contains(&0x07), "{text:?}");
}
