//! The control socket: `eval` and `repl` in a running daemon, who may
//! connect (root and the daemon's user, checked by the kernel's word on
//! the peer), and what root refuses to talk to.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::*;

fn started(sb: &Sandbox, conf: &Path) -> i32 {
    let out = sb.run(conf, &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid = started_pid(&out);
    sb.track(pid);
    pid
}

/// `eval` prints what the forms wrote and their values, as the Lisp
/// prints them (controls escaped); a form that signals ends it with its
/// condition on stderr and exit 1, and the daemon serves on; forms come
/// from stdin with `-`; `--package` names the package; a daemon that does
/// not run is exit 7.
#[test]
fn eval_prints_output_and_values_and_errors() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "e.conf",
        "(:pid-file \"e.pid\" :name \"e\" :main-function #.(lambda () t))",
    );
    let pid = started(&sb, &conf);
    let out = sb.run(
        &conf,
        &["eval", "(+ 1 2)", "(princ \"hi\")", "(values :a \"b\")"],
    );
    assert_eq!(
        (
            out.status.code(),
            stdout(&out).as_str(),
            stderr(&out).as_str()
        ),
        (Some(0), "3\nhi\n\"hi\"\n:A\n\"b\"\n", "")
    );
    let out = sb.run(&conf, &["eval", "(sb-posix:getpid)"]);
    assert_eq!(stdout(&out), format!("{pid}\n"));
    let out = sb.run(&conf, &["eval", "(format nil \"~c[31m\" (code-char 27))"]);
    assert_eq!(
        stdout(&out),
        "\"\\x1b[31m\"\n",
        "no raw escape reaches the terminal"
    );
    let out = sb.run(
        &conf,
        &["eval", "(print 1)", "(error \"boom ~a\" 2)", "(print 3)"],
    );
    assert_eq!(
        (
            out.status.code(),
            stdout(&out).as_str(),
            stderr(&out).as_str()
        ),
        (Some(1), "\n1 \n1\n", "ERROR: boom 2\n")
    );
    let out = sb.run(&conf, &["eval", "(break)"]);
    assert_eq!(out.status.code(), Some(1), "the debugger is an error here");
    let mut child = sb
        .command(&conf, &["eval", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"(defvar *n* 41)\n(1+ *n*)\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "*N*\n42\n", "{}", stderr(&out));
    let out = sb.run(&conf, &["--package", "common-lisp", "eval", "*package*"]);
    assert_eq!(stdout(&out), "#<PACKAGE \"COMMON-LISP\">\n");
    let out = sb.run(&conf, &["--package", "nope", "eval", "1"]);
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(2), "ERROR: there is no package named \"nope\"\n")
    );
    let out = sb.run(&conf, &["--timeout", "0.5", "eval", "(loop)"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("did not finish within 0.5 s"),
        "{}",
        stderr(&out)
    );
    assert!(alive(pid), "the daemon serves on");
    assert_eq!(stdout(&sb.run(&conf, &["eval", "(+ 2 2)"])), "4\n");
    let out = sb.run(&conf, &["eval"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert!(
        !sb.path("e.pid.control").exists(),
        "the directory goes with it"
    );
    let out = sb.run(&conf, &["eval", "1"]);
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(7), "ERROR: the daemon is not running\n")
    );
}

/// Root's `eval` runs with the daemon's power, never root's; the daemon's
/// user may eval too; the directory is 0700 and the user's.
#[test]
fn roots_eval_runs_as_the_daemons_user() {
    let user = test_user();
    let sb = open_sandbox();
    let conf = sb.conf(
        "u.conf",
        "(:pid-file \"u.pid\" :user \"dztest\" :main-function #.(lambda () t))",
    );
    started(&sb, &conf);
    let out = sb.run(&conf, &["eval", "(sb-posix:getuid)"]);
    assert_eq!(stdout(&out), format!("{}\n", user.uid), "{}", stderr(&out));
    let dir = std::fs::metadata(sb.path("u.pid.control")).unwrap();
    assert_eq!(dir.permissions().mode() & 0o7777, 0o700);
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&dir), user.uid.as_raw());
    let out = sb
        .command_as(&conf, &["eval", "(sb-posix:geteuid)"], &user)
        .output()
        .unwrap();
    assert_eq!(stdout(&out), format!("{}\n", user.uid), "{}", stderr(&out));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// Another local user cannot reach the daemon: the directory stops it,
/// and with the permissions loosened the daemon itself refuses (SO_PEERCRED)
/// before it reads a byte, and logs it; nothing is evaluated.
#[test]
fn another_user_is_refused() {
    let user = test_user();
    let sb = open_sandbox();
    let conf = sb.conf(
        "r.conf",
        "(:pid-file \"r.pid\" :name \"r\" :main-function #.(lambda () t))",
    );
    started(&sb, &conf);
    let marker = sb.path("evaluated");
    let form = format!(
        "(open {} :direction :output)",
        lisp_string(marker.to_str().unwrap())
    );
    let out = sb
        .command_as(&conf, &["eval", &form], &user)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("ERROR: refusing the control socket "),
        "{}",
        stderr(&out)
    );
    let dir = sb.path("r.pid.control");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(dir.join("socket"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = sb
        .command_as(&conf, &["eval", &form], &user)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not answering"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists(), "nothing was evaluated");
    assert!(
        wait_until(30, || sb
            .log()
            .contains(&format!("refused a connection of uid {}", user.uid))),
        "{}",
        sb.log()
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// The daemon's user (an attacker with the daemon's code) puts a socket of
/// its own, or a link to root's, where the daemon's was: root's `eval`
/// talks to neither.
#[test]
fn root_talks_only_to_the_daemons_lisp() {
    let user = test_user();
    let sb = open_sandbox();
    let conf = sb.conf(
        "a.conf",
        "(:pid-file \"a.pid\" :user \"dztest\" :main-function #.(lambda () t))",
    );
    let lisp = started(&sb, &conf);
    let socket = sb.path("a.pid.control/socket");
    // The attacker's own files.
    let own = sb.path("attacker");
    std::fs::create_dir(&own).unwrap();
    std::os::unix::fs::chown(&own, Some(user.uid.as_raw()), Some(user.gid.as_raw())).unwrap();
    let listening = own.join("listening");
    let heard = own.join("heard");
    let fake = "import socket,os,sys\n\
                os.unlink(sys.argv[1]); s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n\
                open(sys.argv[2],'w').close()\n\
                c,_=s.accept(); c.settimeout(30); data=b''\n\
                try:\n c.sendall(('hello %s COMMON-LISP-USER\\n' % sys.argv[3]).encode()); data=c.recv(100)\n\
                except OSError: pass\n\
                open(sys.argv[4],'wb').write(data)\n";
    let mut server = Command::new("python3")
        .args(["-c", fake])
        .arg(&socket)
        .arg(&listening)
        .arg(lisp.to_string())
        .arg(&heard)
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .spawn()
        .expect("python3 runs");
    sb.track(server.id() as i32);
    assert!(
        wait_until(30, || listening.exists()),
        "the fake socket listens"
    );
    let out = sb.run(&conf, &["eval", "(+ 1 1)"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("is served by process "),
        "{} / {}",
        stderr(&out),
        stdout(&out)
    );
    assert!(server.wait().unwrap().success());
    assert_eq!(
        std::fs::read(&heard).unwrap(),
        b"",
        "nothing was sent to it"
    );
    // A link to a socket of root's.
    let roots = sb.path("roots.sock");
    let root_listener = std::os::unix::net::UnixListener::bind(&roots).unwrap();
    root_listener.set_nonblocking(true).unwrap();
    std::fs::remove_file(&socket).unwrap();
    std::os::unix::fs::symlink(&roots, &socket).unwrap();
    let out = sb.run(&conf, &["eval", "(+ 1 1)"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(
        root_listener.accept().is_err(),
        "root's socket was connected to"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// The inodes of the sockets process `pid` holds.
fn socket_inodes(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect()
}

/// The control socket opens no TCP port: none of the daemon's sockets is
/// a TCP one (in /proc/net), and one of them is the Unix control socket.
#[test]
fn no_tcp_port_is_opened() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "t.conf",
        "(:pid-file \"t.pid\" :main-function #.(lambda () t))",
    );
    let pid = started(&sb, &conf);
    assert_eq!(stdout(&sb.run(&conf, &["eval", "1"])), "1\n");
    let inodes = socket_inodes(pid);
    let table =
        |name: &str| std::fs::read_to_string(format!("/proc/net/{name}")).unwrap_or_default();
    let inode_of =
        |line: &str, column: usize| line.split_whitespace().nth(column).map(str::to_string);
    for name in ["tcp", "tcp6"] {
        for line in table(name).lines().skip(1) {
            let inode = inode_of(line, 9).unwrap();
            assert!(!inodes.contains(&inode), "a TCP socket: {line}");
        }
    }
    let unix = table("unix");
    assert!(
        unix.lines()
            .any(|l| inode_of(l, 6).is_some_and(|i| inodes.contains(&i))
                && l.contains("t.pid.control/")),
        "the control socket is the daemon's: {inodes:?}"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// `repl` at a terminal: a form and its value, an endless loop
/// interrupted with Ctrl-C (the daemon serves on), an `eval` beside it,
/// and Ctrl-D detaches.
#[test]
fn repl_at_a_terminal() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "p.conf",
        "(:pid-file \"p.pid\" :name \"site\" :main-function #.(lambda () t))",
    );
    let pid = started(&sb, &conf);
    // Its history goes to this sandbox, not the tester's home.
    let inner = format!(
        "HOME={} exec {} {} repl",
        sb.dir.path().display(),
        bin(),
        conf.display()
    );
    let mut terminal = Terminal::of(sb.at_a_terminal(&inner, Stdio::piped(), Stdio::piped()));
    terminal.seen("site COMMON-LISP-USER> ");
    terminal.type_in("(* 6\r");
    terminal.seen("... ");
    terminal.type_in("7)\r");
    terminal.seen("42");
    let looping = sb.path("looping");
    terminal.type_in(&format!(
        "(progn (close (open {} :direction :output)) (loop))\r",
        lisp_string(looping.to_str().unwrap())
    ));
    assert!(wait_until(30, || looping.exists()), "the loop runs");
    assert_eq!(
        stdout(&sb.run(&conf, &["eval", "(+ 1 1)"])),
        "2\n",
        "eval beside it"
    );
    terminal.type_in("\x03");
    terminal.seen("Interrupted");
    terminal.type_in("(+ 2 3)\r");
    terminal.seen("\n5");
    terminal.type_in("\x04");
    assert_eq!(terminal.end(), Some(0), "Ctrl-D detached");
    assert!(alive(pid), "the daemon serves on");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// `reload` goes over the control socket when the daemon has one (the
/// reload function runs in a control thread, and its error comes back
/// whole), and by SIGHUP when it has none (`:control nil`).
#[test]
fn reload_goes_over_the_control_socket() {
    let sb = Sandbox::new();
    let mark = sb.path("reloaded-in");
    let conf_text = |control: &str| {
        format!(
            "(:pid-file \"rl.pid\" {control} :main-function #.(lambda () t)\n \
             :reload-function #.(lambda ()\n\
               (with-open-file (s {} :direction :output :if-exists :supersede)\n\
                 (write-string (sb-thread:thread-name sb-thread:*current-thread*) s))\n\
               (when (probe-file {}) (error \"the new routes do not load\"))))",
            lisp_string(mark.to_str().unwrap()),
            lisp_string(sb.path("broken").to_str().unwrap())
        )
    };
    for (control, thread) in [
        ("", "daemonization control connection"),
        (":control nil", "main thread"),
    ] {
        let conf = sb.conf("rl.conf", &conf_text(control));
        let pid = started(&sb, &conf);
        let _ = std::fs::remove_file(sb.path("broken"));
        assert_line(
            &sb.run(&conf, &["reload"]),
            0,
            &format!(
                "success reloaded (pid = {pid} pid-file = {})",
                sb.pid_file("rl.pid").display()
            ),
        );
        assert_eq!(std::fs::read_to_string(&mark).unwrap(), thread, "{control}");
        std::fs::write(sb.path("broken"), "").unwrap();
        let out = sb.run(&conf, &["reload"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("the new routes do not load"),
            "{}",
            stderr(&out)
        );
        assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    }
}

/// `status -v` adds what only the image knows when it answers (its heap,
/// collections, uptime, threads, systems), in every print style, and says
/// "not answering" (showing the rest) when it does not.
#[test]
fn status_shows_the_image_or_that_it_does_not_answer() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "st.conf",
        "(:pid-file \"st.pid\" :main-function #.(lambda ()\n\
           (sb-thread:make-thread (lambda () (loop (sleep 60))) :name \"request pool\")))",
    );
    let pid = started(&sb, &conf);
    let out = stdout(&sb.run(&conf, &["status", "-v"]));
    assert!(out.contains("\n  image:      heap "), "{out}");
    assert!(out.contains("MiB of "), "{out}");
    assert!(out.contains("request pool"), "{out}");
    assert!(
        out.contains(&format!(
            "\n  control:    {}\n",
            sb.path("st.pid.control/socket").display()
        )),
        "{out}"
    );
    let json = stdout(&sb.run(&conf, &["--print", "json", "status", "-v"]));
    assert!(
        json.contains("\"heap-used\":") && json.contains("\"request pool\""),
        "{json}"
    );
    let target = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let out = stdout(&sb.run(&conf, &["status", "-v"]));
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(
        out.contains("\n  image:      not answering: no answer in time\n"),
        "{out}"
    );
    assert!(out.contains("\n  memory:     "), "the rest is shown: {out}");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// The Lisp's pid a supervisor names in `status`, if it runs one.
fn supervised_lisp(sb: &Sandbox, conf: &Path) -> Option<i32> {
    let line = stdout(&sb.run(conf, &["status"]));
    line.split("lisp-pid = ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// `:watchdog`: a daemon whose check stops answering (a stuck request
/// pool, here a check that waits on it) is ended after the misses and
/// started again, with the cause recorded for `status -v` and the log.
#[test]
fn the_watchdog_restarts_a_hung_daemon() {
    let sb = Sandbox::new();
    let hang = sb.path("hang");
    let asked = sb.path("asked");
    let conf = sb.conf(
        "w.conf",
        &format!(
            "(:pid-file \"w.pid\" :name \"w\" :watchdog (0.5 2) :restart-delay 0.1\n \
             :watchdog-check #.(lambda ()\n\
               (with-open-file (s {asked} :direction :output :if-exists :append :if-does-not-exist :create)\n\
                 (write-line \"asked\" s))\n\
               (loop while (probe-file {hang}) do (sleep 0.05)) t)\n \
             :main-function #.(lambda () t))",
            hang = lisp_string(hang.to_str().unwrap()),
            asked = lisp_string(asked.to_str().unwrap())
        ),
    );
    started(&sb, &conf);
    let first = supervised_lisp(&sb, &conf).expect("a supervised Lisp");
    sb.track(first);
    // Answered questions keep it running.
    assert!(
        wait_until(30, || line_count(&asked) >= 4),
        "the watchdog asks"
    );
    assert_eq!(supervised_lisp(&sb, &conf), Some(first));
    std::fs::write(&hang, "").unwrap();
    assert!(
        wait_until(60, || supervised_lisp(&sb, &conf)
            .is_some_and(|p| p != first)),
        "a new Lisp"
    );
    std::fs::remove_file(&hang).unwrap();
    let second = supervised_lisp(&sb, &conf).unwrap();
    sb.track(second);
    assert!(!alive(first), "the hung Lisp was ended");
    let status = stdout(&sb.run(&conf, &["status", "-v"]));
    assert!(
        status.contains("last exit: watchdog: no answer for 1 s; killed"),
        "{status}"
    );
    assert!(
        sb.log().contains("watchdog: no answer for 1 s"),
        "{}",
        sb.log()
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// SLIME without a port: batch Emacs with Debian's `slime` loads
/// contrib/emacs/daemonization.el, connects through the control socket
/// (`M-x daemonization-slime`), and evaluates `(sb-posix:getpid)`: the
/// daemon's pid. No TCP port is opened by the daemon meanwhile.
#[test]
fn slime_connects_through_the_control_socket() {
    needs_program("emacs", "emacs-nox slime");
    let sb = Sandbox::new();
    let fasl = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fasl-swank-slime/");
    let conf = sb.conf(
        "sl.conf",
        &format!(
            "(:pid-file \"sl.pid\" :fasl-dir {} :main-function #.(lambda () t))",
            lisp_string(fasl.to_str().unwrap())
        ),
    );
    let pid = started(&sb, &conf);
    let el = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/emacs/daemonization.el");
    let script = sb.conf(
        "slime-test.el",
        &format!(
            "(package-initialize)\n\
             (unless (require 'slime nil t) (princ \"NO-SLIME\\n\") (kill-emacs 3))\n\
             (load {el:?})\n\
             (setq daemonization-program {bin:?})\n\
             (daemonization-slime {conf:?})\n\
             (with-timeout (120 (princ \"TIMEOUT\\n\") (kill-emacs 2))\n\
               (while (not (slime-current-connection)) (accept-process-output nil 0.1)))\n\
             (princ (format \"PID %s\\n\" (cadr (slime-eval '(swank:eval-and-grab-output \"(sb-posix:getpid)\")))))\n\
             (kill-emacs 0)\n",
            el = el.display().to_string(),
            bin = bin(),
            conf = conf.display().to_string(),
        ),
    );
    let out = Command::new("emacs")
        .args(["--batch", "-q", "-l"])
        .arg(&script)
        .env("DAEMONIZATION_PID_DIR", sb.dir.path())
        .env("LOGGING_CONF", logging_conf(sb.dir.path()))
        .env("HOME", sb.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains(&format!("PID {pid}\n")),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    let tcp: String = ["tcp", "tcp6"]
        .iter()
        .map(|t| std::fs::read_to_string(format!("/proc/net/{t}")).unwrap_or_default())
        .collect();
    for inode in socket_inodes(pid) {
        assert!(
            !tcp.lines()
                .any(|l| l.split_whitespace().nth(9) == Some(inode.as_str())),
            "a TCP socket of the daemon"
        );
    }
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// A daemon that takes the swank connection and never reads it cannot
/// keep the caller's relay once the caller has left, however much the
/// caller sent.
#[test]
fn a_daemon_that_stops_reading_does_not_keep_the_swank_relay() {
    use std::io::{BufRead as _, ErrorKind};
    let sb = Sandbox::new();
    // The hostile image: it says the connection is handed to swank, then
    // reads nothing more.
    let conf = sb.conf(
        "deaf.conf",
        "(:pid-file \"deaf.pid\" :main-function #.(lambda ()\n\
           (let ((hand (loop for p in (list-all-packages)\n\
                             for s = (find-symbol \"HAND-TO-SWANK\" p)\n\
                             when (and s (fboundp s)) return s))\n\
                 (done (loop for p in (list-all-packages)\n\
                             for s = (find-symbol \"DONE\" p)\n\
                             when (and s (fboundp s) (eq (symbol-package s) p)\n\
                                       (find-symbol \"HAND-TO-SWANK\" p)) return s)))\n\
             (setf (fdefinition hand)\n\
                   (lambda (stream session) (funcall done stream session) (loop (sleep 1)))))))",
    );
    started(&sb, &conf);
    let mut relay = sb
        .command(&conf, &["swank"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sb.track(relay.id() as i32);
    let mut path = String::new();
    std::io::BufReader::new(relay.stdout.take().unwrap())
        .read_line(&mut path)
        .unwrap();
    let mut client = std::os::unix::net::UnixStream::connect(path.trim()).unwrap();
    client.set_nonblocking(true).unwrap();
    // Until neither the daemon nor the relay takes more (a few MB at most).
    let chunk = vec![b'x'; 65536];
    let mut sent = 0usize;
    let full = wait_until(30, || match client.write(&chunk) {
        Ok(n) => {
            sent += n;
            false
        }
        Err(e) => e.kind() == ErrorKind::WouldBlock && sent > 0,
    });
    assert!(full, "the caller's writes were taken: {sent} bytes");
    drop(client);
    assert!(
        wait_until(30, || relay.try_wait().unwrap().is_some()),
        "the relay ended with its caller (after {sent} bytes)"
    );
    assert_eq!(relay.wait().unwrap().code(), Some(0));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// The packaged example (conf-examples/hello.conf, installed as
/// /etc/daemonization/hello.conf.example) runs as its `:user`, opens no
/// TCP port, and answers `eval` and `status -v`.
#[test]
fn the_example_is_reached_by_its_control_socket() {
    let user = test_user();
    let sb = open_sandbox();
    let conf = sb.example(
        "hello.conf",
        &[(":user \"daemonization-demo\"", ":user \"dztest\"")],
    );
    let pid = started(&sb, &conf);
    let lisp = supervised_lisp(&sb, &conf).expect(":ready :notify is supervised");
    sb.track(lisp);
    assert_eq!(
        proc_status(lisp, "Uid").split('\t').next(),
        Some(user.uid.to_string().as_str())
    );
    let ticks = stdout(&sb.run(&conf, &["eval", "(hello-ticks)"]));
    assert!(ticks.trim().parse::<u64>().is_ok(), "{ticks}");
    let tcp: String = ["tcp", "tcp6"]
        .iter()
        .map(|t| std::fs::read_to_string(format!("/proc/net/{t}")).unwrap_or_default())
        .collect();
    for inode in socket_inodes(lisp) {
        assert!(
            !tcp.lines()
                .any(|l| l.split_whitespace().nth(9) == Some(inode.as_str())),
            "a TCP socket of the daemon"
        );
    }
    assert!(alive(pid));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// A hostile check's answer (an error of 20,000 characters) costs the
/// supervisor nothing: the cause it records is cut short, so its state
/// stays readable and `status` still sees the Lisp it supervises.
#[test]
fn a_hostile_watchdog_answer_is_cut_short() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "hw.conf",
        "(:pid-file \"hw.pid\" :watchdog (0.5 2) :restart-delay 0.1\n \
         :watchdog-check #.(lambda () (error (make-string 20000 :initial-element (code-char 8364))))\n \
         :main-function #.(lambda () t))",
    );
    started(&sb, &conf);
    let first = supervised_lisp(&sb, &conf).expect("a supervised Lisp");
    sb.track(first);
    assert!(
        wait_until(60, || supervised_lisp(&sb, &conf)
            .is_some_and(|p| p != first)),
        "the failing Lisp was replaced"
    );
    let status = stdout(&sb.run(&conf, &["status", "-v"]));
    assert!(
        status.contains("last exit: watchdog: the watchdog check failed: €€€"),
        "{status}"
    );
    assert!(status.len() < 4000, "{}", status.len());
    let state = std::fs::read_to_string(sb.pid_file("hw.pid.state")).unwrap();
    assert!(state.len() < 4096, "{}", state.len());
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}
