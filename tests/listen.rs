//! `:listen`: sockets the tool holds across restarts. A real Hunchentoot
//! site (Debian's cl-hunchentoot) on them, restarted under traffic, loses
//! nothing; a new Lisp that fails leaves the old one serving.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::*;

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Ending {
    Answered,
    Refused,
    Reset,
    /// The connection closed before a whole response.
    Eof,
    Timeout,
    NotOk,
    /// A second status line after the body: a response sent twice.
    Duplicate,
}

/// One request on a fresh connection, and how it ended.
fn request(port: u16, uri: &str) -> (Ending, String) {
    let mut stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            return (Ending::Refused, e.to_string());
        }
        Err(e) => return (Ending::Reset, e.to_string()),
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let asked = format!("GET {uri} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(asked.as_bytes()) {
        return (Ending::Reset, e.to_string());
    }
    let mut reply = Vec::new();
    match stream.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            return (Ending::Timeout, e.to_string());
        }
        Err(e) => return (Ending::Reset, e.to_string()),
    }
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let Some((head, body)) = reply.split_once("\r\n\r\n") else {
        return (Ending::Eof, reply);
    };
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.trim().parse::<usize>().ok());
    if reply.matches("HTTP/1.1 ").count() > 1 {
        (Ending::Duplicate, reply)
    } else if !head.starts_with("HTTP/1.1 200") {
        (Ending::NotOk, reply)
    } else if length != Some(body.len()) {
        (Ending::Eof, reply)
    } else {
        (Ending::Answered, body.to_string())
    }
}

/// A Hunchentoot site on the held socket `port`, with `extra` keys: `/`
/// answers `gen PID CORE` (the image's core file), `/slow` after a second;
/// a new Lisp fails while `broken` exists.
fn site(sb: &Sandbox, port: u16, broken: &Path, extra: &str) -> std::path::PathBuf {
    let fasl = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fasl-hunchentoot-listen/");
    sb.conf(
        "site.conf",
        &format!(
            "(:name \"site\" :pid-file \"site.pid\" :fasl-dir {fasl} :output {output} {extra}\n \
             :listen ((:name \"http\" :port {port} :address \"127.0.0.1\"))\n \
             :preload (:hunchentoot)\n \
             :main-function #.(lambda ()\n\
               (when (probe-file {broken}) (error \"the new code is broken\"))\n\
               (eval (read-from-string \"(hunchentoot:define-easy-handler (home :uri \\\"/\\\") ()\n\
                                          (format nil \\\"gen ~a ~a\\\" (sb-posix:getpid) (sb-ext:native-namestring sb-ext:*core-pathname*)))\"))\n\
               (eval (read-from-string \"(hunchentoot:define-easy-handler (slow :uri \\\"/slow\\\") ()\n\
                                          (sleep 1) (format nil \\\"slow ~a\\\" (sb-posix:getpid)))\"))\n\
               (hunchentoot:start (daemonization:make-acceptor :listener \"http\"\n\
                                                              :access-log-destination nil))))",
            fasl = lisp_string(fasl.to_str().unwrap()),
            output = lisp_string(sb.path("site.log").to_str().unwrap()),
            broken = lisp_string(broken.to_str().unwrap()),
        ),
    )
}

/// The Lisp a supervised daemon runs now, from `status`.
fn lisp_pid(sb: &Sandbox, conf: &Path) -> i32 {
    let line = stdout(&sb.run(conf, &["status"]));
    line.split("lisp-pid = ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no Lisp in {line}"))
}

/// Every request answered: none refused, reset, cut, duplicated or not 200.
fn none_lost<'a>(endings: impl Iterator<Item = &'a (Ending, String)>) {
    let endings: Vec<_> = endings.collect();
    let lost: Vec<_> = endings
        .iter()
        .filter(|(e, _)| *e != Ending::Answered)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} lost: {lost:?}",
        lost.len(),
        endings.len()
    );
}

/// A `restart` that puts a new Lisp in, quietly: its pid is added to
/// `lisps` (none of which it is).
fn replaced(sb: &Sandbox, conf: &Path, lisps: &mut Vec<i32>, round: usize) {
    let out = sb.run(conf, &["restart"]);
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(0), ""),
        "round {round}: {}",
        stdout(&out)
    );
    let now = lisp_pid(sb, conf);
    sb.track(now);
    assert!(!lisps.contains(&now), "round {round}: the same Lisp {now}");
    lisps.push(now);
}

/// Five restarts under clients that never pause (fresh connections, quick
/// and one-second requests): every request is answered, once, whole; each
/// restart puts a new Lisp in, and the old one ends once it answered what
/// it took. Then a new Lisp that fails is ended, and the old one serves on.
#[test]
fn restarts_under_traffic_lose_nothing() {
    let sb = Sandbox::new();
    let port = free_port();
    let broken = sb.path("broken");
    let conf = site(&sb, port, &broken, "");
    let out = sb.run(&conf, &["--timeout", "300", "start"]);
    sb.track(started_pid(&out));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = lisp_pid(&sb, &conf);
    sb.track(first);
    let stop = Arc::new(AtomicBool::new(false));
    let endings = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let (stop, endings) = (Arc::clone(&stop), Arc::clone(&endings));
            let uri = if i < 2 { "/slow" } else { "/" };
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ended = request(port, uri);
                    endings.lock().unwrap().push((uri, ended));
                }
            })
        })
        .collect();
    let answered = |endings: &Mutex<Vec<(&str, (Ending, String))>>| {
        endings
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, (e, _))| *e == Ending::Answered)
            .count()
    };
    assert!(
        wait_until(30, || answered(&endings) >= 20),
        "the site serves"
    );
    let mut lisps = vec![first];
    for round in 0..5 {
        replaced(&sb, &conf, &mut lisps, round);
        let seen = answered(&endings);
        assert!(wait_until(30, || answered(&endings) >= seen + 10));
    }
    // The old Lisps ended once they answered what they took.
    for old in &lisps[..5] {
        assert!(wait_until(30, || !alive(*old)), "old Lisp {old} still runs");
    }
    // A new Lisp that fails: ended; the old one serves on.
    std::fs::write(&broken, "").unwrap();
    let serving = lisps[5];
    let out = sb.run(&conf, &["restart"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).starts_with("ERROR: the new Lisp (pid ")
            && stderr(&out).contains("failed: the new code is broken")
            && stderr(&out).ends_with(&format!("; the old Lisp (pid {serving}) keeps serving\n")),
        "{}",
        stderr(&out)
    );
    assert_eq!(lisp_pid(&sb, &conf), serving);
    let seen = answered(&endings);
    assert!(wait_until(30, || answered(&endings) >= seen + 10));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let endings = endings.lock().unwrap();
    none_lost(endings.iter().map(|(_, ended)| ended));
    let slow = endings.iter().filter(|(uri, _)| *uri == "/slow").count();
    assert!(slow >= 6, "only {slow} slow requests");
    // Every generation answered some.
    let answered_by: std::collections::HashSet<&str> = endings
        .iter()
        .filter_map(|(_, (_, body))| body.split(' ').nth(1))
        .collect();
    assert!(answered_by.len() >= 3, "{answered_by:?}");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert!(!alive(serving));
}

/// A restart asked for while one is under way is refused, saying so, and
/// the one under way is not disturbed: it answers once its new Lisp is
/// ready.
#[test]
fn a_restart_during_a_restart_is_refused() {
    let sb = Sandbox::new();
    let port = free_port();
    let hold = sb.path("hold");
    let conf = sb.conf(
        "twice.conf",
        &format!(
            "(:name \"twice\" :pid-file \"twice.pid\" :ready :notify\n \
             :listen ((:name \"http\" :port {port} :address \"127.0.0.1\"))\n \
             :main-function #.(lambda ()\n\
               (loop while (probe-file {hold}) do (sleep 0.02))\n\
               (daemonization:ready)))",
            hold = lisp_string(hold.to_str().unwrap()),
        ),
    );
    let supervisor = started_pid(&sb.run(&conf, &["start"]));
    sb.track(supervisor);
    let old = lisp_pid(&sb, &conf);
    sb.track(old);
    std::fs::write(&hold, "").unwrap();
    let first = sb
        .command(&conf, &["restart"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sb.track(first.id() as i32);
    let state = sb.pid_file("twice.pid.state");
    let next = || {
        std::fs::read_to_string(&state)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("replacing ")?.parse::<i32>().ok())
    };
    assert!(wait_until(60, || next().is_some()), "a replacement starts");
    let next = next().unwrap();
    sb.track(next);
    let second = sb.run(&conf, &["restart"]);
    assert_eq!(second.status.code(), Some(1), "{}", stdout(&second));
    assert_eq!(
        stderr(&second),
        format!(
            "ERROR: a restart is already under way (its new Lisp, pid {next}, is starting); \
             wait for it, then see status; the old Lisp (pid {old}) keeps serving\n"
        )
    );
    std::fs::remove_file(&hold).unwrap();
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        (first.status.code(), stderr(&first).as_str()),
        (Some(0), ""),
        "{}",
        stdout(&first)
    );
    assert_eq!(lisp_pid(&sb, &conf), next);
    assert!(wait_until(30, || !alive(old)), "the old Lisp ends");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// A restart asked for while the Lisp has not said it is ready replaces
/// nothing, says why, and claims no Lisp serves.
#[test]
fn a_restart_before_ready_says_so() {
    let sb = Sandbox::new();
    let hold = sb.path("hold");
    std::fs::write(&hold, "").unwrap();
    let conf = sb.conf(
        "early.conf",
        &format!(
            "(:name \"early\" :pid-file \"early.pid\" :ready :notify\n \
             :listen ((:name \"http\" :port {port} :address \"127.0.0.1\"))\n \
             :main-function #.(lambda ()\n\
               (loop while (probe-file {hold}) do (sleep 0.02))\n\
               (daemonization:ready)))",
            port = free_port(),
            hold = lisp_string(hold.to_str().unwrap()),
        ),
    );
    let out = sb.run(&conf, &["--timeout", "1", "start"]);
    sb.track(started_pid(&out));
    assert!(
        stdout(&out).contains("still initializing"),
        "{}",
        stdout(&out)
    );
    let lisp = lisp_pid(&sb, &conf);
    sb.track(lisp);
    let out = sb.run(&conf, &["restart"]);
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (
            Some(1),
            format!(
                "ERROR: its Lisp (pid {lisp}) is not ready yet, so nothing was replaced: \
                 restart once status says running\n"
            )
        ),
        "{}",
        stdout(&out)
    );
    std::fs::remove_file(&hold).unwrap();
    assert!(wait_until(30, || stdout(&sb.run(&conf, &["status"]))
        .starts_with("running ")));
    assert_eq!(lisp_pid(&sb, &conf), lisp, "nothing was replaced");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert!(!alive(lisp));
}

/// A site on its saved core with held sockets: each restart starts the new
/// Lisp from the core while the old one serves, and a client that never
/// pauses loses nothing.
#[test]
fn a_site_on_its_core_restarts_on_held_sockets() {
    let sb = Sandbox::new();
    let port = free_port();
    let core = sb.path("site.core");
    let conf = site(
        &sb,
        port,
        &sb.path("broken"),
        &format!(":core {}", lisp_string(core.to_str().unwrap())),
    );
    let out = sb.run(&conf, &["build-core"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut lisps = vec![lisp_pid(&sb, &conf)];
    sb.track(lisps[0]);
    let stop = Arc::new(AtomicBool::new(false));
    let endings = Arc::new(Mutex::new(Vec::new()));
    let client = {
        let (stop, endings) = (Arc::clone(&stop), Arc::clone(&endings));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let ended = request(port, "/");
                endings.lock().unwrap().push(ended);
            }
        })
    };
    let answered = || {
        endings
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, _)| *e == Ending::Answered)
            .count()
    };
    assert!(wait_until(30, || answered() >= 5), "the site serves");
    for round in 0..2 {
        replaced(&sb, &conf, &mut lisps, round);
        let seen = answered();
        assert!(wait_until(30, || answered() >= seen + 5));
    }
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let endings = endings.lock().unwrap();
    none_lost(endings.iter());
    // Every answer came from a Lisp of the core, and each generation answered.
    let core = core.display().to_string();
    assert!(
        endings
            .iter()
            .all(|(_, body)| body.split(' ').nth(2) == Some(core.as_str())),
        "{:?}",
        endings.first()
    );
    let answered_by: std::collections::HashSet<&str> = endings
        .iter()
        .filter_map(|(_, body)| body.split(' ').nth(1))
        .collect();
    assert_eq!(answered_by.len(), 3, "{answered_by:?}");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}
