//! systemd: the `unit` command (checked by systemd-analyze verify), and
//! sd_notify from `nodaemon`, received on a real AF_UNIX datagram socket.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// The unit for a conf with a user, a restart policy and a stop schedule;
/// systemd-analyze accepts it.
#[test]
fn unit_is_a_valid_systemd_service() {
    let sb = Sandbox::new();
    let user = if root() {
        test_user().name
    } else {
        "root".to_string()
    };
    let conf = sb.conf(
        "web.conf",
        &format!(
            "(:name \"web\" :user {} :restart :on-failure :restart-delay 2 :start-limit (5 60)\n \
             :stop-schedule \"TERM/10/KILL/5\" :os-params (:linux-umask #o027))",
            lisp_string(&user)
        ),
    );
    let out = sb.run(&conf, &["unit"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let c = conf.display();
    let expected = format!(
        "# systemd unit for the daemonization conf {c}\n\
         # (made by `daemonization {c} unit`)\n\
         [Unit]\n\
         Description=web (daemonization)\n\
         After=network.target\n\
         StartLimitBurst=5\n\
         StartLimitIntervalSec=60\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart={bin} {c} nodaemon\n\
         User={user}\n\
         AmbientCapabilities=CAP_NET_BIND_SERVICE\n\
         UMask=0027\n\
         TimeoutStartSec=60\n\
         KillMode=mixed\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec=10\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        bin = bin()
    );
    assert_eq!(stdout(&out), expected);
    assert!(
        stderr(&out).starts_with(
            "Save it as /etc/systemd/system/web.service, then:\n  \
             systemctl daemon-reload\n  \
             systemctl enable --now web\n"
        ),
        "{}",
        stderr(&out)
    );
    let unit = sb.path("web-daemon.service");
    std::fs::write(&unit, stdout(&out)).unwrap();
    verify_unit(&unit);
}

/// A unit made by a tool in a temporary directory warns: systemd would
/// start it from there at boot.
#[test]
fn unit_warns_about_a_tool_in_a_temporary_directory() {
    let sb = Sandbox::new();
    let tool = sb.path("daemonization");
    std::fs::copy(bin(), &tool).unwrap();
    let conf = sb.conf("site.conf", "(:pid-file \"site.pid\")");
    let out = Command::new(&tool)
        .arg(&conf)
        .arg("unit")
        .env("LOGGING_CONF", logging_conf(sb.dir.path()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains(&format!("ExecStart={} ", tool.display())));
    assert!(
        stderr(&out).ends_with(&format!(
            "systemctl enable --now site\n\
             WARNING: ExecStart runs the tool at {}, in a temporary directory: install it \
             (apt install ./daemonization_*.deb, or cargo install --path . --root /usr/local) \
             and make the unit with the installed one\n",
            tool.display()
        )),
        "{}",
        stderr(&out)
    );
}

/// The template unit `contrib/systemd/daemonization@.service` (one daemon
/// per conf in /etc/daemonization) is a valid service for an instance.
#[test]
fn the_template_unit_is_valid() {
    let sb = Sandbox::new();
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib/systemd/daemonization@.service"),
    )
    .unwrap();
    assert!(
        template.contains("ExecStart=/usr/bin/daemonization /etc/daemonization/%i.conf nodaemon\n")
    );
    assert!(template.contains("Type=notify\n"));
    // verify wants the program to exist: the binary under test stands in.
    let unit = sb.path("daemonization@site.service");
    std::fs::write(&unit, template.replace("/usr/bin/daemonization", bin())).unwrap();
    verify_unit(&unit);
}

/// `systemd-analyze verify` passes `unit` without a warning (outside CI,
/// a machine without systemd skips it, saying so).
fn verify_unit(unit: &std::path::Path) {
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
    {
        Ok(verify) => {
            assert!(verify.status.success(), "{}", stderr(&verify));
            assert_eq!(stderr(&verify), "", "no warnings");
        }
        Err(e) => needs(
            "systemd-analyze",
            false,
            &format!("apt-get install systemd ({e})"),
        ),
    }
}

/// Receives one notification within `secs`, or says none came.
fn receive_within(socket: &UnixDatagram, secs: u64) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(secs)))
        .unwrap();
    let mut buf = [0u8; 4096];
    match socket.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => format!("no notification: {e}"),
    }
}

/// SIGTERM to the tool `child` (a nodaemon), and its end.
fn terminate(child: std::process::Child) -> std::process::Output {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait_with_output().unwrap()
}

/// Receives one notification, with a deadline.
fn receive(socket: &UnixDatagram) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn nodaemon(sb: &Sandbox, conf: &std::path::Path, notify_socket: &str) -> std::process::Child {
    let child = sb
        .command(conf, &["nodaemon"])
        .env("NOTIFY_SOCKET", notify_socket)
        .env("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sb.track(child.id() as i32);
    child
}

/// READY=1 with MAINPID once :main-function returned; STOPPING=1 on
/// SIGTERM, which reaches the Lisp; exit with the Lisp's status (0).
#[test]
fn nodaemon_notifies_ready_and_stopping() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "n.conf",
        "(:pid-file \"n.pid\" :name \"notified\" :main-function #.(lambda () t))",
    );
    let path = sb.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let child = nodaemon(&sb, &conf, path.to_str().unwrap());
    let tool = child.id();
    assert_eq!(receive(&socket), format!("READY=1\nMAINPID={tool}"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tool as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(receive(&socket), "STOPPING=1");
    let out = child.wait_with_output().unwrap();
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), ""));
    assert!(
        stderr(&out).contains("Stop notified daemon"),
        "{}",
        stderr(&out)
    );
}

/// An abstract socket (`@name`) works too; a failing main function sends
/// STATUS= with the Lisp's error and exits 1.
#[test]
fn nodaemon_notifies_failure_on_an_abstract_socket() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "f.conf",
        "(:pid-file \"f.pid\" :main-function #.(lambda () (error \"no database at ~a\" \"db:5432\")))",
    );
    let name = format!("daemonization-test-{}", std::process::id());
    let socket =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    let child = nodaemon(&sb, &conf, &format!("@{name}"));
    assert_eq!(receive(&socket), "STATUS=no database at db:5432");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("ERROR: no database at db:5432\n"),
        "{}",
        stderr(&out)
    );
}

/// As PID 1 (a container), nodaemon reaps the orphans the Lisp leaves, and
/// forwards SIGTERM to the Lisp, exiting with its status.
#[test]
fn nodaemon_as_pid_1_reaps_orphans() {
    needs_root();
    needs_program("unshare", "util-linux");
    let sb = Sandbox::new();
    let orphans = sb.path("orphans");
    // Each shell exits at once; its `sleep` is orphaned to PID 1, the tool.
    let conf = sb.conf(
        "init.conf",
        &format!(
            "(:pid-file \"init.pid\" :main-function #.(lambda ()\n\
               (dotimes (i 5) (sb-ext:run-program \"/bin/sh\" '(\"-c\" \"sleep 0.2 & echo $! >> {}\")))))",
            orphans.display()
        ),
    );
    let mut child = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "--mount-proc"])
        .arg(bin())
        .arg(&conf)
        .arg("nodaemon")
        .env("DAEMONIZATION_PID_DIR", sb.dir.path())
        .env("LOGGING_CONF", logging_conf(sb.dir.path()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sb.track(child.id() as i32);
    // The tool is unshare's child: PID 1 inside, this pid outside.
    let tool = || -> Option<i32> {
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id()))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    assert!(wait_until(30, || tool().is_some()));
    let tool = tool().unwrap();
    sb.track(tool);
    assert!(wait_until(30, || std::fs::read_to_string(&orphans)
        .is_ok_and(|t| t.lines().count() == 5)));
    // Once the sleeps are over, none of the tool's children is a zombie.
    let zombies = || -> usize {
        let children = std::fs::read_to_string(format!("/proc/{tool}/task/{tool}/children"))
            .unwrap_or_default();
        children
            .split_whitespace()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                    s.rsplit(')')
                        .next()
                        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
                })
            })
            .count()
    };
    let children = || -> usize {
        std::fs::read_to_string(format!("/proc/{tool}/task/{tool}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .count()
    };
    assert!(
        wait_until(30, || children() == 1 && zombies() == 0),
        "orphans reaped: {} children",
        children()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tool),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the Lisp's status");
}

/// A conf with `:reload-function` gets `ExecReload=`: systemd's reload
/// sends SIGHUP to the Lisp, which calls it.
#[test]
fn unit_reloads_a_conf_with_a_reload_function() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "site.conf",
        "(:pid-file \"site.pid\" :name \"site\" :reload-function #.(lambda () t))",
    );
    let out = sb.run(&conf, &["unit"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains(&format!(
            "\nExecReload={} {} reload\n",
            bin(),
            conf.display()
        )),
        "{}",
        stdout(&out)
    );
    let plain = sb.conf("plain.conf", "(:pid-file \"plain.pid\")");
    assert!(!stdout(&sb.run(&plain, &["unit"])).contains("ExecReload"));
}

/// A daemon started the way the template unit starts it (`nodaemon` with a
/// NOTIFY_SOCKET) is the conf's daemon for every command: status sees it
/// supervised, reload calls its :reload-function, list lists it, a second
/// start finds it running and says systemd runs it; stop and restart
/// refuse, naming the systemctl command (the manager would start it again).
#[test]
fn a_daemon_of_the_template_unit_is_seen_by_every_command() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "site.conf",
        "(:pid-file \"site.pid\" :name \"site\" :reload-function #.(lambda () t)\n \
         :main-function #.(lambda () t))",
    );
    let path = sb.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let child = nodaemon(&sb, &conf, path.to_str().unwrap());
    let tool = child.id() as i32;
    assert_eq!(receive(&socket), format!("READY=1\nMAINPID={tool}"));
    let p = sb.pid_file("site.pid");
    let status = stdout(&sb.run(&conf, &["status"]));
    assert!(
        status.starts_with(&format!(
            "running (pid = {tool} pid-file = {}) - supervising (lisp-pid = ",
            p.display()
        )),
        "{status}"
    );
    let lisp: i32 = status
        .split("lisp-pid = ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    sb.track(lisp);
    assert_line(
        &sb.run(&conf, &["reload"]),
        0,
        &format!("success reloaded (pid = {tool} pid-file = {})", p.display()),
    );
    let list = stdout(&run(sb.dir.path(), &["list"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("site ") && l.contains(" running ")),
        "{list}"
    );
    let again = sb.run(&conf, &["start"]);
    assert_line(
        &again,
        0,
        &format!(
            "success started - already-running (pid = {tool} pid-file = {})",
            p.display()
        ),
    );
    assert!(
        stderr(&again).starts_with("WARNING: "),
        "{}",
        stderr(&again)
    );
    for (command, systemctl) in [("stop", "systemctl stop"), ("restart", "systemctl restart")] {
        let out = sb.run(&conf, &[command]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(
            stdout(&out).contains(" - managed-by-systemd (pid = "),
            "{}",
            stdout(&out)
        );
        let error = stderr(&out);
        assert!(
            error.contains("runs this daemon")
                && (error.contains(systemctl) || error.contains("service manager")),
            "{error}"
        );
    }
    assert!(alive(tool) && alive(lisp), "refused commands left it alone");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tool),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(receive(&socket), "STOPPING=1");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!p.exists(), "the pid file goes with it");
}

/// Socket activation: a listening socket systemd passes to nodaemon (fd 3,
/// LISTEN_FDS, LISTEN_PID) is the conf's :listen socket, passed on to the
/// Lisp the same way; the daemon answers on it.
#[test]
fn a_socket_systemd_passes_is_the_daemons() {
    use std::io::{Read as _, Write as _};
    use std::os::fd::AsRawFd as _;
    use std::os::unix::process::CommandExt as _;
    let sb = Sandbox::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The conf names another port: the passed socket is used, not bound.
    let conf = sb.conf(
        "act.conf",
        &format!(
            "(:pid-file \"act.pid\" :listen ((:name \"web\" :port {}))\n \
             :main-function #.(lambda ()\n\
               (sb-thread:make-thread (lambda ()\n\
                 (let ((s (daemonization:listener-socket \"web\")))\n\
                   (loop (let ((c (sb-bsd-sockets:socket-accept s)))\n\
                           (let ((out (sb-bsd-sockets:socket-make-stream c :output t)))\n\
                             (format out \"lisp ~a fds ~a~%\" (sb-posix:getpid) (sb-posix:getenv \"LISTEN_FDS\"))\n\
                             (finish-output out))\n\
                           (sb-bsd-sockets:socket-close c)))))\n\
                 :name \"server\")))",
            free_port()
        ),
    );
    let path = sb.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let fd = listener.as_raw_fd();
    let mut command = std::process::Command::new("sh");
    command
        .args([
            "-c",
            "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec \"$0\" \"$1\" nodaemon",
        ])
        .arg(bin())
        .arg(&conf)
        .env("DAEMONIZATION_PID_DIR", sb.dir.path())
        .env("LOGGING_CONF", logging_conf(sb.dir.path()))
        .env("NOTIFY_SOCKET", &path)
        .env("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only dup2 between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // dup2 clears close-on-exec; on 3 already, it is cleared here.
            let placed = match fd {
                3 => nix::libc::fcntl(3, nix::libc::F_SETFD, 0),
                _ => nix::libc::dup2(fd, 3),
            };
            if placed < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let mut child = command.spawn().unwrap();
    let tool = child.id() as i32;
    sb.track(tool);
    drop(listener);
    let heard = receive_within(&socket, 60);
    if !heard.starts_with("READY=1") {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("{heard:?}: {}", stderr(&out));
    }
    let mut reply = String::new();
    std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap()
        .read_to_string(&mut reply)
        .unwrap();
    assert!(
        reply.starts_with("lisp ") && reply.ends_with(" fds 1\n"),
        "{reply:?}"
    );
    let _ = std::net::TcpStream::connect(("127.0.0.1", port)).map(|mut s| s.write_all(b""));
    let out = terminate(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// systemd may leave descriptors of its own on 3 to 5 (stored fds, a
/// socket the conf does not name): `nodaemon` closes them before it opens
/// the pid directory and lock there, and serves as always.
#[test]
fn descriptors_the_manager_leaves_on_3_to_5_are_no_obstacle() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "fds.conf",
        "(:pid-file \"fds.pid\" :name \"fds\" :main-function #.(lambda () t))",
    );
    let path = sb.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let child = Command::new("sh")
        .args([
            "-c",
            "exec 3</dev/null 4</dev/null 5</dev/null; exec \"$0\" \"$1\" nodaemon",
        ])
        .arg(bin())
        .arg(&conf)
        .env("DAEMONIZATION_PID_DIR", sb.dir.path())
        .env("LOGGING_CONF", logging_conf(sb.dir.path()))
        .env("NOTIFY_SOCKET", &path)
        .env("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tool = child.id() as i32;
    sb.track(tool);
    assert_eq!(receive(&socket), format!("READY=1\nMAINPID={tool}"));
    let status = stdout(&sb.run(&conf, &["status"]));
    assert!(
        status.starts_with(&format!("running (pid = {tool} ")),
        "{status}"
    );
    let out = terminate(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!sb.pid_file("fds.pid").exists());
}

/// A NOTIFY_SOCKET without systemd's INVOCATION_ID (one that leaked into a
/// shell's environment) never makes `nodaemon` claim the pid file as a
/// unit's: it notifies readiness, and no command takes it for the conf's
/// daemon run by a unit.
#[test]
fn a_stray_notify_socket_makes_no_unit() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "stray.conf",
        "(:pid-file \"stray.pid\" :name \"stray\" :main-function #.(lambda () t))",
    );
    let path = sb.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let child = sb
        .command(&conf, &["nodaemon"])
        .env("NOTIFY_SOCKET", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tool = child.id() as i32;
    sb.track(tool);
    assert_eq!(receive(&socket), format!("READY=1\nMAINPID={tool}"));
    assert!(!sb.pid_file("stray.pid").exists(), "no pid file claimed");
    assert!(
        stdout(&sb.run(&conf, &["status"])).starts_with("not-running - no-pid-file"),
        "not the conf's unit"
    );
    let out = terminate(child);
    assert!(
        matches!(out.status.code(), Some(0 | 143)),
        "{:?} {}",
        out.status,
        stderr(&out)
    );
}

/// `:watchdog` under systemd: the unit has `WatchdogSec=` (the misses'
/// time) and restarts on failure, passing systemd-analyze; `nodaemon`
/// sends `WATCHDOG=1` each time the Lisp answers.
#[test]
fn the_watchdog_maps_onto_systemds() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "wd.conf",
        "(:pid-file \"wd.pid\" :name \"wd\" :watchdog (0.5 4) :main-function #.(lambda () t))",
    );
    let out = sb.run(&conf, &["unit"]);
    let unit = stdout(&out);
    assert!(
        unit.contains("\nWatchdogSec=2\n") && unit.contains("\nRestart=on-failure\n"),
        "{unit}"
    );
    let file = sb.path("wd.service");
    std::fs::write(&file, &unit).unwrap();
    verify_unit(&file);
    let path = sb.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let child = nodaemon(&sb, &conf, path.to_str().unwrap());
    let tool = child.id() as i32;
    sb.track(tool);
    assert_eq!(receive(&socket), format!("READY=1\nMAINPID={tool}"));
    assert_eq!(receive(&socket), "WATCHDOG=1");
    assert_eq!(receive(&socket), "WATCHDOG=1");
    let out = terminate(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `nodaemon` as the Lisp's parent (a NOTIFY_SOCKET, no unit): if the tool
/// is killed outright, its Lisp goes with it, never left running alone.
#[test]
fn a_killed_nodaemon_takes_its_lisp_along() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "along.conf",
        "(:pid-file \"along.pid\" :main-function #.(lambda () t))",
    );
    let path = sb.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut child = sb
        .command(&conf, &["nodaemon"])
        .env("NOTIFY_SOCKET", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tool = child.id() as i32;
    sb.track(tool);
    assert!(receive(&socket).starts_with("READY=1"));
    let lisp = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().map(str::to_string))
                .and_then(|rest| rest.split_whitespace().nth(1).map(str::to_string))
                == Some(tool.to_string())
        })
        .expect("the Lisp, the tool's child");
    sb.track(lisp);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tool),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert!(wait_until(30, || !alive(lisp)), "the Lisp {lisp} stayed");
}

/// `nodaemon` (what the template unit runs) makes the `:user`'s fasl
/// cache as `start` does: under a service manager the system user's site
/// compiles its `:preload` and becomes ready.
#[test]
fn nodaemon_makes_the_users_fasl_cache() {
    use std::os::unix::fs::MetadataExt as _;
    let user = system_user();
    let sb = open_sandbox();
    let cache = sb.path("cache/fasl/");
    let conf = sb.conf(
        "nd.conf",
        &format!(
            "(:pid-file \"nd.pid\" :user \"dzsystem\" :fasl-dir {} :preload (:alexandria)\n \
             :main-function #.(lambda () (alexandria:iota 3)))",
            lisp_string(cache.to_str().unwrap())
        ),
    );
    let path = sb.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let child = nodaemon(&sb, &conf, path.to_str().unwrap());
    sb.track(child.id() as i32);
    assert!(receive(&socket).starts_with("READY=1"));
    assert_eq!(std::fs::metadata(&cache).unwrap().uid(), user.uid.as_raw());
    let out = terminate(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
