//! `:output` on a full disk: the daemon lives on, lines are written whole
//! or dropped, and once space returns a line says how many were dropped
//! and why. Whoever writes the file: an unsupervised SBCL's own streams
//! (its line keeper), a supervisor's writer, or the supervisor an
//! unsupervised ECL gets for its `:output`.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use crate::util::*;

/// A daemon whose thread prints `line N` (N from 1, counted in
/// `cl-user::*printed*`) while it runs, its `:output` on a 1 MB tmpfs.
fn printing_daemon(sb: &Sandbox, name: &str, keys: &str) -> (std::path::PathBuf, Tmpfs) {
    let disk = Tmpfs::at(&sb.path(&format!("{name}-disk")), "1m");
    let conf = sb.conf(
        &format!("{name}.conf"),
        &format!(
            "(:pid-file \"{name}.pid\" :name \"{name}\" :output \"{name}-disk/out.log\" {keys}\n\
             :main-function #.(lambda ()\n\
               (defvar cl-user::*printed* 0)\n\
               (flet ((print-lines ()\n\
                        (loop (format t \"line ~d~%\" (incf (symbol-value 'cl-user::*printed*)))\n\
                              (finish-output)\n\
                              (sleep 0.002))))\n\
                 #+sbcl (sb-thread:make-thread #'print-lines :name \"printer\")\n\
                 #+ecl (mp:process-run-function \"printer\" #'print-lines))\n\
               t))"
        ),
    );
    (conf, disk)
}

/// How many lines the daemon has printed, asked over its control socket.
fn printed(sb: &Sandbox, conf: &Path) -> u64 {
    let out = sb.run(conf, &["eval", "cl-user::*printed*"]);
    stdout(&out).trim().parse().unwrap_or(0)
}

/// The `line N` numbers in `text`, each with the count of the "dropped"
/// line before it (0 if none); panics on any other line of the printer's
/// that is cut or mixed.
fn numbered(text: &str, file: &Path) -> Vec<(u64, u64)> {
    let note = |line: &str| {
        let rest = line.strip_prefix("[daemonization: ")?;
        let (count, rest) = rest.split_once(" lines of output dropped: ")?;
        assert_eq!(
            rest,
            format!("{}: No space left on device]", file.display()),
            "{line}"
        );
        count.parse::<u64>().ok()
    };
    let mut found = Vec::new();
    let mut dropped = 0;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("line ") {
            let n = n.parse().unwrap_or_else(|_| panic!("a cut line: {line:?}"));
            found.push((n, dropped));
            dropped = 0;
        } else if let Some(count) = note(line) {
            dropped = count;
        } else {
            assert!(
                line.starts_with(";;; Loading") || line.starts_with("Stop "),
                "a cut or mixed line: {line:?}"
            );
        }
    }
    found
}

/// Fills the disk: a file as large as the space left.
fn fill(dir: &Path) -> fs::File {
    let mut filler = fs::File::create(dir.join("filler")).unwrap();
    while filler.write_all(&[0; 4096]).is_ok() {}
    while filler.write_all(&[0]).is_ok() {}
    filler
}

/// Runs the daemon through a full disk and back; its sandbox, for more
/// checks.
fn survives_a_full_disk(name: &str, keys: &str) -> Sandbox {
    needs_root();
    let sb = Sandbox::new();
    let (conf, disk) = printing_daemon(&sb, name, keys);
    let file = sb.path(&format!("{name}-disk/out.log"));
    let started = sb.run(&conf, &["start"]);
    assert_eq!(
        started.status.code(),
        Some(0),
        "{name}: {}",
        stderr(&started)
    );
    assert!(
        wait_until(30, || printed(&sb, &conf) > 10),
        "{name}: prints"
    );
    let filler = fill(&sb.path(&format!("{name}-disk")));
    // The file's last page is full too once a hundred lines printed are
    // not in it.
    // (Read while lines are written and undone: only whole ones count.)
    let last_in_file = || {
        let text = fs::read_to_string(&file).unwrap_or_default();
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix("line ")?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_until(60, || printed(&sb, &conf) > last_in_file() + 100),
        "{name}: prints on while the disk is full"
    );
    drop(filler);
    fs::remove_file(sb.path(&format!("{name}-disk/filler"))).unwrap();
    assert!(
        wait_until(30, || fs::read_to_string(&file)
            .is_ok_and(|t| t.contains("[daemonization: ")
                && t.ends_with('\n')
                && t.lines().last().is_some_and(|l| l.starts_with("line ")))),
        "{name}: says what was dropped once space returns"
    );
    let status = sb.run(&conf, &["status"]);
    assert_eq!(status.status.code(), Some(0), "{name}: {}", stdout(&status));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0), "{name}");
    let lines = numbered(&fs::read_to_string(&file).unwrap(), &file);
    // Every line printed is in the file or counted as dropped.
    for pair in lines.windows(2) {
        let ((before, _), (after, dropped)) = (pair[0], pair[1]);
        assert_eq!(after, before + dropped + 1, "{name}: {pair:?}");
    }
    assert!(
        lines.iter().any(|(_, dropped)| *dropped > 50),
        "{name}: {lines:?}"
    );
    drop(disk);
    sb
}

/// SBCL without a supervisor: its streams drop whole lines and log it.
#[test]
fn an_sbcl_daemon_survives_a_full_disk() {
    let sb = survives_a_full_disk("alone", "");
    assert!(
        sb.log().contains(&format!(
            "the :output file {} cannot be written (No space left on device): its lines are \
             dropped until it can",
            sb.path("alone-disk/out.log").display()
        )),
        "{}",
        sb.log()
    );
}

/// SBCL under a supervisor: the supervisor's writer drops whole lines.
#[test]
fn a_supervised_daemon_survives_a_full_disk() {
    survives_a_full_disk("watched", ":restart :on-failure");
}

/// ECL without a supervisor gets one for its `:output` (its streams die
/// of a full disk).
#[test]
fn an_ecl_daemon_survives_a_full_disk() {
    needs_program("ecl", "ecl");
    survives_a_full_disk("ecl", ":lisp :ecl");
}

/// SBCL's line keeper: three threads printing at once, then one thread
/// printing while another interrupts it, one interrupt at a time, with
/// more printing (a handler that prints in the thread it interrupts, as a
/// timer's does). Every line is whole, none is lost, threads' lines never
/// mix, the daemon lives; a handler's line lands in the line it
/// interrupted, whole (as in SBCL's own streams); a thread's unfinished
/// line is written, ended, at the stop, and the stop's own line is on its
/// own.
#[test]
fn lines_of_threads_and_interrupts_never_mix() {
    let sb = Sandbox::new();
    let file = sb.path("out.log");
    let conf = sb.conf(
        "mix.conf",
        &format!(
            "(:pid-file \"mix.pid\" :output {}\n\
             :main-function #.(lambda ()\n\
               (sb-thread:make-thread (lambda ()\n\
                 (mapc #'sb-thread:join-thread\n\
                       (loop for k below 3 collect\n\
                         (let ((k k))\n\
                           (sb-thread:make-thread\n\
                             (lambda () (dotimes (i 3000) (format t \"t~d line ~d~%\" k i)))))))\n\
                 (let* ((done nil)\n\
                        (answered (sb-thread:make-semaphore))\n\
                        (printer (sb-thread:make-thread (lambda ()\n\
                                   (let ((i 0))\n\
                                     (loop until done do (format t \"p line ~d~%\" i) (incf i))\n\
                                     (format t \"p printed ~d~%\" i))\n\
                                   (format t \"p unfinished\")\n\
                                   (loop (sleep 10))))))\n\
                   (dotimes (i 300)\n\
                     (sb-thread:interrupt-thread printer (lambda ()\n\
                       (format t \"interrupt ~d~%\" i)\n\
                       (sb-thread:signal-semaphore answered)))\n\
                     (sb-thread:wait-on-semaphore answered :timeout 10))\n\
                   (setf done t))))\n\
               t))",
            lisp_string(file.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stderr(&out),
        fs::read_to_string(&file).unwrap_or_default()
    );
    let printed = || fs::read_to_string(&file).is_ok_and(|t| t.contains("p printed "));
    assert!(wait_until(120, printed), "the printer finished");
    assert_eq!(sb.run(&conf, &["status"]).status.code(), Some(0), "alive");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    let text = fs::read_to_string(&file).unwrap();
    // The handlers' lines taken out, the printer's lines are whole.
    let mut interrupts = 0;
    let mut rest = String::new();
    let mut left = text.as_str();
    while let Some(at) = left.find("interrupt ") {
        let after = &left[at + "interrupt ".len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        assert!(
            digits > 0 && after[digits..].starts_with('\n'),
            "a cut handler's line: {:?}",
            &left[at..]
        );
        rest.push_str(&left[..at]);
        left = &after[digits + 1..];
        interrupts += 1;
    }
    rest.push_str(left);
    assert_eq!(interrupts, 300, "every interrupt printed");
    let mut next = [0u64; 4];
    for line in rest.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let thread = |t: &str| match t {
            "p" => Some(3),
            t => t.strip_prefix('t').and_then(|k| k.parse::<usize>().ok()),
        };
        match words[..] {
            [t, "line", n] if thread(t).is_some() => {
                let k = thread(t).unwrap();
                assert_eq!(n.parse::<u64>().ok(), Some(next[k]), "{line:?}");
                next[k] += 1;
            }
            ["p", "printed", n] => assert_eq!(n.parse::<u64>().ok(), Some(next[3]), "{line:?}"),
            ["p", "unfinished"] | ["Stop", "daemon", "(signal", "10)"] => {}
            _ => panic!("a cut or mixed line: {line:?}"),
        }
    }
    assert_eq!(next[..3], [3000; 3]);
    assert!(next[3] > 0);
    assert!(
        text.ends_with("Stop daemon (signal 10)\np unfinished\n"),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
}

/// Unfinished lines stay apart: a line `finish-output` wrote unfinished
/// is ended by another thread's next line (its own thread goes on with
/// it), and each is ended at the stop. The keeper's compiled stream, put
/// in place after the start, leaves a `*terminal-io*` the daemon's code
/// set alone.
#[test]
fn unfinished_lines_stay_apart() {
    let sb = Sandbox::new();
    let file = sb.path("out.log");
    let conf = sb.conf(
        "apart.conf",
        &format!(
            "(:pid-file \"apart.pid\" :output {}\n\
             :main-function #.(lambda ()\n\
               (setf *terminal-io* (make-two-way-stream *standard-input* (make-broadcast-stream)))\n\
               (setf (symbol-value 'cl-user::mine) *terminal-io*)\n\
               (write-string \"progress...\") (finish-output) (write-line \"done\")\n\
               (sb-thread:join-thread (sb-thread:make-thread (lambda () (write-string \"alpha\") (finish-output))))\n\
               (write-line \"main\")\n\
               (sb-thread:make-thread (lambda () (write-string \"beta\") (loop (sleep 10))))\n\
               t))",
            lisp_string(file.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let compiled = || {
        stdout(&sb.run(&conf, &["eval", "(type-of sb-impl::*stdout*)"]))
            == "DAEMONIZATION-BOOTSTRAP::COMPILED-LINE-KEEPER\n"
    };
    assert!(wait_until(30, compiled), "the keeper is compiled");
    assert_eq!(
        stdout(&sb.run(
            &conf,
            &["eval", "(eq *terminal-io* (symbol-value 'cl-user::mine))"]
        )),
        "T\n"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "progress...done\nalpha\nmain\nStop daemon (signal 10)\nbeta\n"
    );
}
