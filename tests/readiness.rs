//! `:ready`: a daemon whose main function never returns says it is ready
//! itself, with `(daemonization:ready)` or `READY=1` on `$NOTIFY_SOCKET`,
//! or its port answers; until then `status` says `activating`.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

/// A main that never returns, and says it is ready once `go` exists (with
/// `how`, Lisp code run in the daemon).
fn waits_for(
    sb: &Sandbox,
    name: &str,
    go: &std::path::Path,
    how: &str,
    extra: &str,
) -> std::path::PathBuf {
    sb.conf(
        &format!("{name}.conf"),
        &format!(
            "(:name \"{name}\" :pid-file \"{name}.pid\" :ready :notify {extra}\n \
             :main-function #.(lambda ()\n\
             (loop until (probe-file {go}) do (sleep 0.02))\n\
             {how}\n\
             (loop (sleep 10))))",
            go = lisp_string(go.to_str().unwrap()),
        ),
    )
}

/// The status line, plist and JSON of a conf's daemon.
fn status_words(sb: &Sandbox, conf: &std::path::Path) -> (String, String, String) {
    let line = stdout(&sb.run(conf, &["status"]));
    let plist = stdout(&sb.run(conf, &["--print", "plist", "status"]));
    let json = stdout(&sb.run(conf, &["--print", "json", "status"]));
    (line, plist, json)
}

/// `(daemonization:ready "text")` from a main that never returns: start
/// reports started at once; before it, status says activating in every
/// print style (and the start, given 0.5 s, says still initializing and
/// what it waits for).
#[test]
fn a_main_that_never_returns_says_it_is_ready() {
    let sb = Sandbox::new();
    let go = sb.path("go");
    let conf = waits_for(
        &sb,
        "web",
        &go,
        "(daemonization:ready \"serving on 8080\")",
        "",
    );
    let out = sb.run(&conf, &["--timeout", "0.5", "start"]);
    let pid = pid_in(&stdout(&out)).expect("a pid");
    sb.track(pid);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "WARNING: the daemon is still initializing: it has not said it is ready within 0.5 s \
             (:ready :notify: call (daemonization:ready)"
        ),
        "{}",
        stderr(&out)
    );
    let (line, plist, json) = status_words(&sb, &conf);
    assert!(
        line.starts_with(&format!("activating (pid = {pid} ")),
        "{line}"
    );
    assert!(plist.contains(":status \"activating\""), "{plist}");
    assert!(json.contains("\"status\":\"activating\""), "{json}");
    let verbose = stdout(&sb.run(&conf, &["status", "-v"]));
    assert!(
        verbose.contains("state:      activating since"),
        "{verbose}"
    );
    fs::write(&go, "").unwrap();
    assert!(
        wait_until(30, || stdout(&sb.run(&conf, &["status"]))
            .starts_with("running ")),
        "never ready: {}",
        stdout(&sb.run(&conf, &["status"]))
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    // Ready at once this time: one line, nothing on stderr.
    let out = sb.run(&conf, &["start"]);
    sb.track(started_pid(&out));
    assert_eq!((out.status.code(), stderr(&out).as_str()), (Some(0), ""));
    assert!(
        stdout(&out).starts_with("success started (pid = "),
        "{}",
        stdout(&out)
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// Code that speaks systemd's protocol: `systemd-notify --ready`, a child
/// of the Lisp, on the socket the tool gave it.
#[test]
fn ready_1_on_the_notify_socket_counts() {
    needs_program("systemd-notify", "systemd");
    let sb = Sandbox::new();
    let go = sb.path("go");
    fs::write(&go, "").unwrap();
    let conf = waits_for(
        &sb,
        "sd",
        &go,
        "(sb-ext:run-program \"/usr/bin/systemd-notify\" '(\"--ready\") :environment (sb-ext:posix-environ))",
        "",
    );
    let out = sb.run(&conf, &["start"]);
    sb.track(started_pid(&out));
    assert_eq!((out.status.code(), stderr(&out).as_str()), (Some(0), ""));
    let (line, _, _) = status_words(&sb, &conf);
    assert!(line.starts_with("running "), "{line}");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// `(:port N)`: ready once the daemon's own port answers; a main that binds
/// it late and never returns.
#[test]
fn a_port_that_answers_is_ready() {
    let sb = Sandbox::new();
    let go = sb.path("go");
    let port = free_port();
    let conf = sb.conf(
        "port.conf",
        &format!(
            "(:name \"port\" :pid-file \"port.pid\" :ready (:port {port})\n \
             :main-function #.(lambda ()\n\
             (require :sb-bsd-sockets)\n\
             (loop until (probe-file {go}) do (sleep 0.02))\n\
             (let ((s (make-instance (find-symbol \"INET-SOCKET\" \"SB-BSD-SOCKETS\") :type :stream :protocol :tcp)))\n\
               (setf (sb-bsd-sockets:sockopt-reuse-address s) t)\n\
               (sb-bsd-sockets:socket-bind s #(127 0 0 1) {port})\n\
               (sb-bsd-sockets:socket-listen s 5)\n\
               (loop (sb-bsd-sockets:socket-close (sb-bsd-sockets:socket-accept s))))))",
            go = lisp_string(go.to_str().unwrap()),
        ),
    );
    let out = sb.run(&conf, &["--timeout", "0.5", "start"]);
    let pid = pid_in(&stdout(&out)).expect("a pid");
    sb.track(pid);
    assert_eq!(
        stderr(&out),
        format!(
            "WARNING: the daemon is still initializing: nothing answered on 127.0.0.1 port {port} \
             within 0.5 s (:ready (:port {port})); if it only needs longer, give start more time \
             with --timeout or :start-timeout\n"
        )
    );
    assert!(stdout(&sb.run(&conf, &["status"])).starts_with("activating "));
    fs::write(&go, "").unwrap();
    assert!(wait_until(30, || stdout(&sb.run(&conf, &["status"]))
        .starts_with("running ")));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    let out = sb.run(&conf, &["start"]);
    sb.track(started_pid(&out));
    assert_eq!((out.status.code(), stderr(&out).as_str()), (Some(0), ""));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// nodaemon under a service manager: READY=1 reaches it in every mode (the
/// Lisp's own notification relayed, with the tool's MAINPID), and the
/// daemon's status text as STATUS=.
#[test]
fn nodaemon_relays_readiness_in_every_mode() {
    let sb = Sandbox::new();
    let port = free_port();
    let modes = [
        ("returned", ":returned", "t".to_string()),
        (
            "notify",
            ":notify",
            "(progn (daemonization:ready \"up\") (loop (sleep 10)))".to_string(),
        ),
        (
            "port",
            &format!("(:port {port})") as &str,
            format!(
                "(progn (require :sb-bsd-sockets)\n\
                 (let ((s (make-instance (find-symbol \"INET-SOCKET\" \"SB-BSD-SOCKETS\") :type :stream :protocol :tcp)))\n\
                 (setf (sb-bsd-sockets:sockopt-reuse-address s) t)\n\
                 (sb-bsd-sockets:socket-bind s #(127 0 0 1) {port})\n\
                 (sb-bsd-sockets:socket-listen s 5)\n\
                 (loop (sb-bsd-sockets:socket-close (sb-bsd-sockets:socket-accept s)))))"
            ),
        ),
    ];
    for (name, ready, main) in modes {
        let conf = sb.conf(
            &format!("{name}.conf"),
            &format!(
                "(:pid-file \"{name}.pid\" :ready {ready} :main-function #.(lambda () {main}))"
            ),
        );
        let path = sb.path(&format!("{name}.sock"));
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let child = sb
            .command(&conf, &["nodaemon"])
            .env("NOTIFY_SOCKET", &path)
            .env("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let tool = child.id() as i32;
        sb.track(tool);
        let mut heard = Vec::new();
        let mut buf = [0u8; 4096];
        while !heard.iter().any(|m: &String| m.starts_with("READY=1")) {
            let n = socket.recv(&mut buf).expect("a notification");
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let expected_ready = format!("READY=1\nMAINPID={tool}");
        let expected: Vec<&str> = match name {
            "notify" => vec!["STATUS=up", &expected_ready],
            _ => vec![&expected_ready],
        };
        assert_eq!(heard, expected, "{name}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(tool),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
    }
}

/// The notify socket is the daemon's own: it lies in the daemon's control
/// directory, where another user cannot reach it (to send READY=1, or to
/// fill its queue and keep the daemon's word out), and the daemon's user
/// (here its Lisp, through systemd-notify) is heard there.
#[test]
fn only_the_daemons_user_reaches_its_notify_socket() {
    needs_root();
    needs_program("systemd-notify", "systemd");
    let sb = Sandbox::new();
    let go = sb.path("go");
    let user = test_user();
    let conf = waits_for(
        &sb,
        "own",
        &go,
        "(sb-ext:run-program \"/usr/bin/systemd-notify\" '(\"--ready\") :environment (sb-ext:posix-environ))",
        &format!(":user {}", lisp_string(&user.name)),
    );
    let start = sb
        .command(&conf, &["--timeout", "5", "start"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The supervisor's Lisp, and the socket it was given.
    let state = sb.pid_file("own.pid.state");
    let mut address = None;
    assert!(wait_until(30, || {
        let lisp = fs::read_to_string(&state).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("lisp ").map(str::to_string))
        });
        address = lisp
            .and_then(|lisp| fs::read(format!("/proc/{lisp}/environ")).ok())
            .and_then(|env| {
                env.split(|b| *b == 0)
                    .find_map(|kv| kv.strip_prefix(b"NOTIFY_SOCKET="))
                    .map(|a| String::from_utf8_lossy(a).into_owned())
            });
        address.is_some()
    }));
    let address = std::path::PathBuf::from(address.unwrap());
    assert_eq!(
        address,
        sb.pid_file("own.pid.control").join("notify"),
        "in the control directory"
    );
    // Nobody else reaches it while start waits (a child that switched to
    // uid 65534 before it sends, then would exec true).
    let mut stranger = std::process::Command::new("true");
    stranger.uid(65534).gid(65534);
    let to = address.clone();
    // SAFETY: the child only makes a socket and sends one datagram.
    unsafe {
        stranger.pre_exec(
            move || match UnixDatagram::unbound()?.send_to(b"READY=1", &to) {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
                Err(e) => Err(e),
                Ok(_) => Err(std::io::Error::other("a stranger's READY=1 was sent")),
            },
        )
    };
    let refused = stranger.status().expect("the stranger is refused");
    assert!(refused.success());
    let out = start.wait_with_output().unwrap();
    sb.track(pid_in(&stdout(&out)).expect("a pid"));
    assert!(
        stderr(&out).contains("still initializing"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&sb.run(&conf, &["status"])).starts_with("activating "));
    // The daemon's own word counts.
    fs::write(&go, "").unwrap();
    assert!(wait_until(30, || stdout(&sb.run(&conf, &["status"]))
        .starts_with("running ")));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}
