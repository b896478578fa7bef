//! Logging to a real syslog daemon: the test starts its own rsyslogd on
//! /dev/log (CI installs rsyslog and runs none), writing to a file.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::*;

/// Our rsyslogd; stopped, and its socket removed, when dropped.
struct Rsyslogd {
    child: Child,
    _lock: nix::fcntl::Flock<fs::File>,
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = fs::remove_file("/dev/log");
    }
}

/// Starts rsyslogd writing every message to `log`; the test fails when
/// another syslog daemon owns /dev/log (this machine's logs are not ours
/// to read) or rsyslogd is missing.
fn rsyslogd(dir: &Path, log: &Path) -> Rsyslogd {
    // One test run at a time may own /dev/log.
    let lock = fs::File::create("/tmp/daemonization-syslog-test.lock").unwrap();
    let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    needs(
        "/dev/log free (it starts an rsyslogd of its own)",
        !Path::new("/dev/log").exists(),
        "stop the machine's syslog daemon while the tests run (systemctl stop syslog.socket rsyslog)",
    );
    let installed = Command::new("rsyslogd")
        .arg("-v")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    needs("rsyslogd", installed, "apt-get install rsyslog");
    let conf = dir.join("rsyslog.conf");
    fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{dir}\")\n\
             module(load=\"imuxsock\" SysSock.Name=\"/dev/log\")\n\
             template(name=\"raw\" type=\"string\" string=\"%syslogtag% %msg%\\n\")\n\
             *.* action(type=\"omfile\" file=\"{log}\" template=\"raw\")\n",
            dir = dir.display(),
            log = log.display()
        ),
    )
    .unwrap();
    let child = Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .spawn()
        .expect("rsyslogd (apt-get install rsyslog)");
    let daemon = Rsyslogd { child, _lock: lock };
    assert!(
        wait_until(30, || Path::new("/dev/log").exists()),
        "rsyslogd made /dev/log"
    );
    daemon
}

/// The built-in logging conf sends every line to syslog: the tool's lines
/// for start and stop, and the daemon's own "Stop NAME daemon".
#[test]
fn start_and_stop_are_logged_to_syslog() {
    needs_root();
    let sb = Sandbox::new();
    let log = sb.path("syslog.log");
    let _rsyslogd = rsyslogd(sb.dir.path(), &log);
    let conf = sb.conf(
        "s.conf",
        "(:pid-file \"s.pid\" :name \"syslogged\" :main-function #.(lambda () t))",
    );
    let run = |command: &str| {
        let out = sb
            .command(&conf, &[command])
            .env_remove("LOGGING_CONF")
            .output()
            .unwrap();
        assert_eq!(
            (out.status.code(), stderr(&out).as_str()),
            (Some(0), ""),
            "{}",
            stdout(&out)
        );
        stdout(&out)
    };
    let started = run("start");
    let pid = pid_in(&started).unwrap();
    sb.track(pid);
    run("stop");
    let p = sb.pid_file("s.pid").display().to_string();
    let expected = [
        format!("(:DAEMONIZATION :INFO \"success started (pid = {pid} pid-file = {p})\" :PID "),
        format!("(:DAEMONIZATION :TRACE \"forked the daemon process {pid}\" :PID "),
        format!(
            "(:DAEMONIZATION :INFO \"Stop syslogged daemon\" :PID {pid} :NAME \"syslogged\" :TYPE-PROC :CHILD)"
        ),
        format!("(:DAEMONIZATION :INFO \"success stopped (pid = {pid} pid-file = {p})\" :PID "),
    ];
    let found = |text: &str| {
        expected.iter().all(|e| {
            text.lines()
                .any(|l| l.starts_with("daemonization[") && l.contains(e.as_str()))
        })
    };
    assert!(
        wait_until(30, || found(&fs::read_to_string(&log).unwrap_or_default())),
        "{expected:#?} not all in\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    // What the original's read-log.sh did still finds them.
    let grep = Command::new("grep")
        .arg("-o")
        .arg("(:DAEMONIZATION.*")
        .arg(&log)
        .output()
        .unwrap();
    assert!(stdout(&grep).lines().count() >= expected.len());
}

/// A log that cannot be written: one warning, and the command goes on.
#[test]
fn a_logging_failure_never_fails_the_command() {
    let sb = Sandbox::new();
    let logging = sb.conf(
        "logging.conf",
        "(:files-dir \"/proc/no-such-dir\" :admin-files-dir \"/proc/no-such-dir\"\n\
         :info-destination \"d.log\" :error-destination \"d.log\" :trace-destination \"d.log\"\n\
         :admin-info-destination \"d.log\" :admin-error-destination \"d.log\" :admin-trace-destination \"d.log\")",
    );
    let conf = sb.conf("x.conf", "(:pid-file \"x.pid\")");
    let out = sb
        .command(&conf, &["status"])
        .env("LOGGING_CONF", &logging)
        .output()
        .unwrap();
    assert_line(
        &out,
        3,
        &format!(
            "not-running - no-pid-file (pid-file = {})",
            sb.pid_file("x.pid").display()
        ),
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("WARNING: cannot write the log (/proc/no-such-dir/d.log): ")
            && err.ends_with("; the command goes on\n"),
        "{err}"
    );
}
