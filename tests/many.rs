//! Many daemons: a directory of confs, and `list`.

use std::fs;
use std::process::Command;

use crate::util::*;

/// A directory as the conf argument: the command for every `*.conf` in
/// it, in parallel, one line each prefixed with its name, in name order;
/// the exit code is the highest (0 when all succeeded).
#[test]
fn a_directory_of_confs_runs_each() {
    let sb = Sandbox::new();
    let fleet = sb.path("fleet");
    fs::create_dir(&fleet).unwrap();
    for name in ["web", "api", "jobs"] {
        fs::write(
            fleet.join(format!("{name}.conf")),
            format!("(:pid-file \"{name}.pid\" :name \"{name}\" :main-function #.(lambda () t))"),
        )
        .unwrap();
    }
    fs::write(fleet.join("notes.txt"), "not a conf").unwrap();
    let fleet_arg = fleet.to_str().unwrap();
    let run = |command: &str| sb.command(&fleet, &[command]).output().unwrap();
    let out = run("start");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(out.status.code(), Some(0), "{text} {}", stderr(&out));
    assert_eq!(lines.len(), 3, "{text}");
    for (line, name) in lines.iter().zip(["api", "jobs", "web"]) {
        let prefix = format!("{name}: success started (pid = ");
        assert!(line.starts_with(&prefix), "{text}");
        sb.track(pid_in(line).unwrap());
    }
    let out = run("status");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out)
            .lines()
            .all(|l| l.contains(": running (pid = ")),
        "{}",
        stdout(&out)
    );

    fs::write(fleet.join("broken.conf"), "(:pid-fil \"x\")").unwrap();
    let out = run("status");
    assert_eq!(
        out.status.code(),
        Some(6),
        "the highest exit code: the conf error"
    );
    assert!(stderr(&out).starts_with(&format!(
        "broken: ERROR: {fleet_arg}/broken.conf:1:2: unknown key"
    )));
    let out = run("stop");
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(stdout(&out).matches(": success stopped (pid = ").count(), 3);
    let out = run("nodaemon");
    assert_eq!(out.status.code(), Some(2));
}

/// `list`: every daemon `start` left a record of, wherever its pid file
/// is, with its state, pid, uptime, memory and conf; a stopped one is
/// gone from the list. The pid is the one `status` shows and `start`
/// printed (a supervisor's, for a supervised daemon).
#[test]
fn list_shows_the_daemons_the_tool_started() {
    let sb = Sandbox::new();
    let elsewhere = sb.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let web = sb.conf(
        "web.conf",
        "(:pid-file \"web.pid\" :name \"web\" :restart :on-failure :main-function #.(lambda () t))",
    );
    let api = sb.conf(
        "api.conf",
        &format!(
            "(:pid-file {} :name \"api\" :main-function #.(lambda () t))",
            lisp_string(elsewhere.join("api.pid").to_str().unwrap())
        ),
    );
    let list = |args: &[&str]| {
        let out = Command::new(bin())
            .args(args)
            .env("DAEMONIZATION_PID_DIR", sb.dir.path())
            .env("LOGGING_CONF", logging_conf(sb.dir.path()))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(list(&["list"]), "NAME  PID  STATE  UPTIME  MEMORY  CONF\n");
    let web_pid = started_pid(&sb.run(&web, &["start"]));
    let api_pid = started_pid(&sb.run(&api, &["start"]));
    let text = list(&["list"]);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "PID", "STATE", "UPTIME", "MEMORY", "CONF"]
    );
    // In conf order: api.conf, then web.conf.
    assert_eq!(
        lines[1][0..3],
        ["api", api_pid.to_string().as_str(), "running"]
    );
    assert_eq!(lines[1].last(), Some(&api.to_str().unwrap()));
    assert!(
        lines[1][4].parse::<f64>().is_ok() && lines[1][5] == "MiB",
        "{text}"
    );
    assert_eq!(
        lines[2][0..3],
        ["web", web_pid.to_string().as_str(), "running"]
    );
    let json: serde_json::Value =
        serde_json::from_str(&list(&["list", "--print", "json"])).unwrap();
    assert_eq!(json[1]["pid"], web_pid);
    assert_eq!(sb.run(&api, &["stop"]).status.code(), Some(0));
    let text = list(&["list"]);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().nth(1).unwrap().starts_with("web "), "{text}");
    assert_eq!(sb.run(&web, &["stop"]).status.code(), Some(0));
}
