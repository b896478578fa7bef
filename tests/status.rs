//! What the tool says of a daemon: `status` in each print style,
//! `status -v`, and a start's progress line on a terminal.

use std::process::Stdio;

use crate::util::*;

/// `--print plist` is the original's result plist, `json` the same fields.
#[test]
fn print_styles() {
    let sb = Sandbox::new();
    let conf = sb.conf("p.conf", "(:pid-file \"p.pid\")");
    let p = sb.pid_file("p.pid").display().to_string();
    assert_line(
        &sb.run(&conf, &["status", "--print", "plist"]),
        3,
        &format!(
            "(:result nil :command \"status\" :status \"not-running\" :reason \"no-pid-file\" :pid nil :pid-file {} :line {})",
            lisp_string(&p),
            lisp_string(&format!("not-running - no-pid-file (pid-file = {p})"))
        ),
    );
    assert_line(
        &sb.run(&conf, &["stop", "--print", "json"]),
        0,
        &format!(
            "{{\"command\":\"stop\",\"line\":{line:?},\"pid\":null,\"pid-file\":{p:?},\"reason\":\"no-pid-file\",\"result\":\"failed\",\"status\":null}}",
            line = format!("failed stopped - no-pid-file (pid-file = {p})")
        ),
    );
    let out = sb.run(&conf, &["status", "--print", "none"]);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(3), ""));
}

/// `status -v`: the status line, then a block like `systemctl status`
/// (here of a supervised daemon: its Lisp and its supervisor); plain
/// `status` stays the original's one line; `--print plist` and `json`
/// carry the same fields.
#[test]
fn status_verbose_tells_what_a_person_wants_to_know() {
    let sb = Sandbox::new();
    let output = sb.path("web.log");
    let conf = sb.conf(
        "web.conf",
        &format!(
            "(:pid-file \"web.pid\" :name \"web\" :output {} :restart :on-failure\n \
             :main-function #.(lambda () (format t \"serving~%\") (finish-output)))",
            lisp_string(output.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    let supervisor = started_pid(&out);
    assert!(wait_until(10, || line_count(&output) == 1));
    let line = stdout(&sb.run(&conf, &["status"]));
    assert_eq!(line.lines().count(), 1, "{line}");
    let out = sb.run(&conf, &["status", "-v"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], line.trim_end());
    let lisp: i32 = line
        .split("lisp-pid = ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("  {name}:")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .to_string()
    };
    assert_eq!(field("name"), "web");
    assert!(field("state").starts_with("running since 20"), "{text}");
    assert_eq!(field("main pid"), format!("{lisp} (the Lisp)"));
    assert_eq!(field("supervisor"), format!("{supervisor}: 0 restarts"));
    assert!(field("memory").ends_with(" MiB resident"), "{text}");
    assert!(field("lisp").starts_with("SBCL "), "{text}");
    assert_eq!(field("conf"), conf.display().to_string());
    assert_eq!(
        field("pid file"),
        sb.pid_file("web.pid").display().to_string()
    );
    assert_eq!(field("output"), output.display().to_string());
    assert_eq!(lines.last(), Some(&"    serving"));

    let plist = stdout(&sb.run(&conf, &["status", "-v", "--print", "plist"]));
    assert!(plist.contains(" :name \"web\" :lisp \"SBCL "), "{plist}");
    assert!(plist.contains(" :last-lines (\"serving\")"), "{plist}");
    let json: serde_json::Value = serde_json::from_str(&stdout(
        &sb.run(&conf, &["status", "-v", "--print", "json"]),
    ))
    .unwrap();
    assert_eq!(json["lisp-pid"], lisp);
    assert!(json["rss-kib"].as_u64().unwrap() > 1000, "{json}");
    assert_eq!(json["last-lines"][0], "serving");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// `start` at a terminal (a pty made by script(1)) shows how long it has
/// waited for `:main-function`, in place, and erases it when ready; not at
/// a terminal it prints only the result line.
#[test]
fn start_shows_progress_on_a_terminal() {
    use std::io::Read as _;
    let sb = Sandbox::new();
    let conf = sb.conf(
        "slow.conf",
        "(:pid-file \"slow.pid\" :name \"slow\" :main-function #.(lambda () (sleep 2.5)))",
    );
    let inner = format!("{} {} start", bin(), conf.display());
    let mut script = sb.at_a_terminal(&inner, Stdio::null(), Stdio::piped());
    assert!(wait_until(30, || script.try_wait().unwrap().is_some()));
    let mut out = String::new();
    script
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let pid = pid_in(&out).unwrap_or_else(|| panic!("{out:?}"));
    sb.track(pid);
    assert!(
        out.contains("\r\x1b[Kwaiting for :main-function (1 s, timeout 60 s)")
            && out.contains(
                "\r\x1b[Kwaiting for :main-function (2 s, timeout 60 s)\r\x1b[Ksuccess started"
            ),
        "{out:?}"
    );
    let out = sb.run(&conf, &["restart"]);
    assert_eq!(stderr(&out), "", "no progress when not at a terminal");
    assert!(stdout(&out).starts_with("success restarted (pid = "));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// A daemon started in any print style is the sandbox's to end: none
/// outlives a test (the helpers read the plist's and JSON's line too).
#[test]
fn a_daemon_started_in_any_print_style_ends_with_its_test() {
    for style in ["json", "plist", "simple"] {
        let sb = Sandbox::new();
        let conf = sb.conf(
            "j.conf",
            "(:pid-file \"j.pid\" :main-function #.(lambda () t))",
        );
        let out = sb.run(&conf, &["start", "--print", style]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let pids = daemons_in(&stdout(&out));
        assert_eq!(pids.len(), 1, "{style}: {}", stdout(&out));
        assert!(alive(pids[0]));
        drop(sb);
        assert!(
            wait_until(10, || !alive(pids[0])),
            "{style}: the daemon {} outlived its sandbox",
            pids[0]
        );
    }
}

/// A Lisp stopped by SIGSTOP reads `stopped` (exit 1, with how to go on),
/// and `running` again after SIGCONT.
#[test]
fn a_stopped_lisp_reads_stopped() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "paused.conf",
        "(:pid-file \"paused.pid\" :main-function #.(lambda () t))",
    );
    let pid = started_pid(&sb.run(&conf, &["start"]));
    sb.track(pid);
    let p = sb.pid_file("paused.pid");
    let target = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGSTOP).unwrap();
    assert!(wait_until(30, || proc_status(pid, "State").starts_with('T')));
    let out = sb.run(&conf, &["status"]);
    assert_line(
        &out,
        1,
        &format!("stopped (pid = {pid} pid-file = {})", p.display()),
    );
    assert!(stderr(&out).contains("SIGCONT"), "{}", stderr(&out));
    let json = stdout(&sb.run(&conf, &["--print", "json", "status"]));
    assert!(json.contains("\"status\":\"stopped\""), "{json}");
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(wait_until(30, || !proc_status(pid, "State").starts_with('T')));
    assert_line(
        &sb.run(&conf, &["status"]),
        0,
        &format!("running (pid = {pid} pid-file = {})", p.display()),
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}
