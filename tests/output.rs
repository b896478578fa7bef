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
