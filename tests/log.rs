//! `log`: the daemon's captured output, printed and followed.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

/// `log`: the last lines of the daemon's `:output`; `-f` follows it across
/// rotation; without `:output`, where the output goes and how to capture it.
#[test]
fn log_prints_and_follows_the_captured_output() {
    use std::io::Read as _;
    let sb = Sandbox::new();
    let output = sb.path("out.log");
    let conf = sb.conf(
        "talk.conf",
        &format!(
            "(:pid-file \"talk.pid\" :name \"talk\" :output {}\n \
             :main-function #.(lambda () (dotimes (i 3) (format t \"line ~d~%\" (1+ i))) (finish-output)))",
            lisp_string(output.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    started_pid(&out);
    assert!(wait_until(10, || line_count(&output) == 3));
    let out = sb.run(&conf, &["log", "-n", "2"]);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "line 2\nline 3\n")
    );

    let mut follow = sb
        .command(&conf, &["log", "-f", "-n", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sb.track(follow.id() as i32);
    let mut stdout_pipe = follow.stdout.take().unwrap();
    let (send, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buffer = [0u8; 256];
        while let Ok(n) = stdout_pipe.read(&mut buffer) {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buffer[..n]);
            let _ = send.send(String::from_utf8_lossy(&text).into_owned());
        }
    });
    let mut text = String::new();
    let mut wait_for = |wanted: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !text.ends_with(wanted) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match seen.recv_timeout(left) {
                Ok(now) => text = now,
                Err(_) => panic!("log -f printed {text:?}, not ...{wanted:?}"),
            }
        }
    };
    wait_for("line 3\n");
    let append = |path: &Path, line: &str| {
        use std::io::Write as _;
        let mut file = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        file.write_all(line.as_bytes()).unwrap();
    };
    append(&output, "appended\n");
    wait_for("line 3\nappended\n");
    fs::rename(&output, sb.path("out.log.1")).unwrap();
    append(&output, "after rotation\n");
    wait_for("line 3\nappended\nafter rotation\n");
    follow.kill().unwrap();
    follow.wait().unwrap();
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));

    let quiet = sb.conf("quiet.conf", "(:pid-file \"quiet.pid\" :name \"quiet\")");
    let out = sb.run(&quiet, &["log"]);
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (
            Some(0),
            format!(
                "the daemon's output is not captured (it goes to /dev/null): set :output in {} \
                 to capture it; under systemd (daemonization CONF unit), journalctl -u quiet shows it\n",
                quiet.display()
            )
        )
    );
}
